"""Password policy (NIST SP 800-63B-4) and hashing through core's argon2id hasher.

Length is the only composition rule; blocklist checks refuse the email's local part, the
service's name, common passwords (also spaced, repeated or padded with digits) and
repeated or sequential characters, as SP 800-63B-4 asks of verifiers.
"""

import unicodedata
from functools import lru_cache
from pathlib import Path

from app.core.config import Settings
from app.core.errors import ValidationFailed
from app.core.security import PasswordHasher

PASSWORD_MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common_passwords.txt"
MIN_LOCAL_PART = 3
"""Email local parts shorter than this are too common a substring to forbid."""
DIGITS = "0123456789"
MIN_DISTINCT_CHARACTERS = 4
"""Fewer different characters than this is a repetition such as `aaaaaaaaaaaaaaab`."""
MIN_REPEATED_UNIT = 4
"""A password that repeats a shorter unit than this (`abcabcabc…`) is predictable."""
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    DIGITS,
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)
"""Alphabet, digit and keyboard runs; any stretch of one, either way round, is predictable."""
CONTEXT_WORDS = ("roombook",)
"""The service's own name: the first word an attacker tries against it."""


@lru_cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords, lower-cased, read once."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.casefold() for line in lines if line and not line.startswith("#"))


def normalise_password(password: str) -> str:
    """NFKC-normalise, so the same password typed on any keyboard hashes the same."""
    return unicodedata.normalize("NFKC", password)


def compact(text: str) -> str:
    """Letters and digits only: `p@ss w.o.r.d` and `password` look alike to a guesser."""
    return "".join(char for char in text if char.isalnum())


def repeated_unit(text: str) -> str:
    """The shortest string `text` is a repetition of (`text` itself when it repeats nothing)."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return text


def is_sequence(text: str) -> bool:
    """Whether `text` is a run of the alphabet, the digits or a keyboard row, either way."""
    for sequence in SEQUENCES:
        cycle = sequence * (len(text) // len(sequence) + 2)
        if text in cycle or text in cycle[::-1]:
            return True
    return False


class PasswordService:
    """Check new passwords against the policy and hash or verify them off the event loop."""

    def __init__(
        self, *, hasher: PasswordHasher, min_length: int, common: frozenset[str] | None = None
    ) -> None:
        self.hasher = hasher
        self.min_length = min_length
        self.common = common_passwords() if common is None else common

    def problems(self, *, password: str, email: str) -> list[str]:
        """Say what is wrong with a new password; an empty list means acceptable."""
        normalised = normalise_password(password)
        # Length only, no composition rules: SP 800-63B-4 found those make passwords weaker.
        if len(normalised) < self.min_length:
            return [f"Use at least {self.min_length} characters."]
        if len(normalised) > PASSWORD_MAX_LENGTH:
            return [f"Use at most {PASSWORD_MAX_LENGTH} characters."]
        return self._blocklisted(normalised.casefold(), email=email)

    def _blocklisted(self, folded: str, *, email: str) -> list[str]:
        # The first blocklist the password is on, checked cheapest first.
        if self._contains_local_part(folded, email=email):
            return ["Do not use your email address in your password."]
        if any(word in compact(folded) for word in CONTEXT_WORDS):
            return ["Do not use the name of this service in your password."]
        if self._is_common(folded):
            return ["This password is too common; choose another."]
        if self._is_predictable(folded):
            return ["This password is too predictable (repeated or sequential characters)."]
        return []

    def _contains_local_part(self, folded: str, *, email: str) -> bool:
        local_part = email.split("@", 1)[0].casefold()
        # `jane.doe` also shows up as `janedoe` or `jane doe` in a password.
        return any(
            len(part) >= MIN_LOCAL_PART and part in text
            for part, text in ((local_part, folded), (compact(local_part), compact(folded)))
        )

    def _is_common(self, folded: str) -> bool:
        # Almost every listed password is shorter than the minimum length, so the list
        # is also checked against the password without spaces and symbols, against the
        # unit a repeated password repeats (`passwordpassword`), and without the digits
        # people add at either end (`iloveyou12345678`).
        letters = compact(folded)
        unit = repeated_unit(letters)
        variants = {letters, unit, letters.strip(DIGITS), unit.strip(DIGITS)}
        # Very short variants (`a`, `ab1`) are on the list but too weak a signal to refuse on.
        candidates = {folded} | {v for v in variants if len(v) >= MIN_REPEATED_UNIT}
        return not candidates.isdisjoint(self.common)

    def _is_predictable(self, folded: str) -> bool:
        squeezed = "".join(folded.split())
        unit = repeated_unit(squeezed)
        letters = compact(unit)
        # A run counts only when it is most of the password, not a part of a passphrase.
        run = len(letters) * 2 >= len(unit) and is_sequence(letters)
        return len(set(squeezed)) < MIN_DISTINCT_CHARACTERS or len(unit) < MIN_REPEATED_UNIT or run

    def check(self, *, password: str, email: str, field: str = "password") -> None:
        """Raise a 422 naming `field` when the password breaks the policy."""
        problems = self.problems(password=password, email=email)
        if problems:
            raise ValidationFailed(
                [
                    {"field": field, "message": message, "type": "password_policy"}
                    for message in problems
                ]
            )

    async def hash_new(self, *, password: str, email: str, field: str = "password") -> str:
        """Check a new password against the policy, then hash it."""
        self.check(password=password, email=email, field=field)
        return await self.hasher.hash(normalise_password(password))

    async def verify(self, *, password_hash: str, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return await self.hasher.verify(password_hash, normalise_password(password))

    async def verify_against_nothing(self, *, password: str) -> None:
        """Spend a verification's work when there is no hash to check (timing safety)."""
        await self.hasher.verify_against_nothing(normalise_password(password))

    async def rehash_if_needed(self, *, password_hash: str, password: str) -> str | None:
        """A fresh hash when the stored one used older parameters, else None."""
        if not self.hasher.needs_rehash(password_hash):
            return None
        return await self.hasher.hash(normalise_password(password))


def build_password_service(*, hasher: PasswordHasher, settings: Settings) -> PasswordService:
    """The password policy and hasher configured by settings."""
    return PasswordService(hasher=hasher, min_length=settings.auth.password_min_length)
