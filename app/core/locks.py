"""Advisory lock ids: a signed 64-bit number per locked thing, apart for each purpose."""

import hashlib

WAIT_FOR_LOCK = "SELECT pg_advisory_xact_lock(:id)"
"""Wait for an advisory lock held until the transaction (or its savepoint) ends."""


def advisory_lock_id(namespace: bytes, *parts: bytes) -> int:
    """The advisory lock id of `parts` under `namespace`.

    The namespace salts the hash, so ids taken for one purpose never coincide with another
    purpose's ids for the same thing.
    """
    digest = hashlib.sha256(namespace + b"".join(parts)).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
