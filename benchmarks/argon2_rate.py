"""Raw argon2id verifications per second in one thread: the ceiling of the login scenario.

The harness runs this pinned to the API's core with the configured parameters and prints
one JSON line; login's req/s is reported as a ratio to it.
"""

import argparse
import json
import sys
import time

from argon2 import PasswordHasher, Type


def verify_rate(*, time_cost: int, memory_kib: int, parallelism: int, seconds: float) -> float:
    """Verify one password against its hash for about `seconds`; return verifications/s."""
    hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )
    password = "bench password of a reasonable length"  # noqa: S105 - a throwaway input
    stored = hasher.hash(password)
    hasher.verify(stored, password)
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        hasher.verify(stored, password)
        done += 1
    return done / elapsed


def main(argv: list[str] | None = None) -> None:
    """Measure and print `{"verify_per_s": …}`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.argon2_rate")
    parser.add_argument("--time-cost", type=int, required=True)
    parser.add_argument("--memory-kib", type=int, required=True)
    parser.add_argument("--parallelism", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    rate = verify_rate(
        time_cost=args.time_cost,
        memory_kib=args.memory_kib,
        parallelism=args.parallelism,
        seconds=args.seconds,
    )
    sys.stdout.write(json.dumps({"verify_per_s": rate}) + "\n")


if __name__ == "__main__":
    main()
