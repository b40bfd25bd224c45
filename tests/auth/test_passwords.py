"""The password policy: length only, NFKC, never truncated, no email, not on the common list."""

import pytest

from app.auth.passwords import (
    PASSWORD_MAX_LENGTH,
    PasswordService,
    common_passwords,
    normalise_password,
)
from app.core.errors import ValidationFailed
from app.core.security import PasswordHasher

EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def passwords() -> PasswordService:
    """The policy with the default minimum and cheap hashing."""
    hasher = PasswordHasher(time_cost=1, memory_kib=64, parallelism=1, concurrency=2)
    return PasswordService(hasher=hasher, min_length=15)


def test_the_common_list_is_shipped_with_at_least_ten_thousand_entries() -> None:
    common = common_passwords()
    assert len(common) >= 10_000
    assert {"password", "123456", "qwerty"} <= common
    assert not any(entry.startswith("#") for entry in common)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("fourteen chars", "Use at least 15 characters."),
        ("x" * (PASSWORD_MAX_LENGTH + 1), f"Use at most {PASSWORD_MAX_LENGTH} characters."),
        ("my name is Jane.Doe, hello!", "Do not use your email address in your password."),
        ("1qaz2wsx3edc4rfv", "This password is too common; choose another."),
        ("1QAZ2WSX3EDC4RFV", "This password is too common; choose another."),
    ],
)
def test_weak_passwords_are_named(passwords: PasswordService, password: str, problem: str) -> None:
    assert passwords.problems(password=password, email=EMAIL) == [problem]


@pytest.mark.parametrize(
    "password",
    [
        "fifteen chars!!",
        "x" * PASSWORD_MAX_LENGTH,
        "correct horse battery staple",
        "ÄÖÜ äöü ß — ünïcödé pässwörd",
        "no digits no symbols no capitals at all",
    ],
)
def test_length_is_the_only_composition_rule(passwords: PasswordService, password: str) -> None:
    assert passwords.problems(password=password, email=EMAIL) == []


def test_short_local_parts_are_not_forbidden(passwords: PasswordService) -> None:
    assert passwords.problems(password="joe has a long passphrase", email="jo@example.com") == []


def test_length_counts_characters_after_nfkc(passwords: PasswordService) -> None:
    # U+FB01 (ﬁ) becomes "fi": 14 ligatures are 28 characters once normalised.
    assert passwords.problems(password="\ufb01" * 14, email=EMAIL) == []
    assert normalise_password("\uff21\uff22\uff23") == "ABC"


def test_check_raises_a_422_naming_the_field(passwords: PasswordService) -> None:
    with pytest.raises(ValidationFailed) as failed:
        passwords.check(password="short", email=EMAIL, field="new_password")
    assert failed.value.errors == [
        {
            "field": "new_password",
            "message": "Use at least 15 characters.",
            "type": "password_policy",
        }
    ]


async def test_equivalent_unicode_spellings_verify_alike(passwords: PasswordService) -> None:
    composed = "caf\u00e9 au lait with friends"
    decomposed = "cafe\u0301 au lait with friends"
    stored = await passwords.hash_new(password=composed, email=EMAIL)
    assert await passwords.verify(password_hash=stored, password=decomposed)


async def test_long_passwords_are_never_truncated(passwords: PasswordService) -> None:
    long = "a" * 100 + "b" * 28
    stored = await passwords.hash_new(password=long, email=EMAIL)
    assert await passwords.verify(password_hash=stored, password=long)
    assert not await passwords.verify(password_hash=stored, password="a" * 100 + "c" * 28)
    assert not await passwords.verify(password_hash=stored, password=long[:72])


async def test_rehash_only_when_parameters_changed(passwords: PasswordService) -> None:
    current = await passwords.hash_new(password="a fine passphrase here", email=EMAIL)
    assert await passwords.rehash_if_needed(password_hash=current, password="x") is None
    older = PasswordHasher(time_cost=2, memory_kib=64, parallelism=1, concurrency=1)
    stale = await older.hash("a fine passphrase here")
    fresh = await passwords.rehash_if_needed(password_hash=stale, password="a fine passphrase here")
    assert fresh is not None
    assert fresh.startswith("$argon2id$v=19$m=64,t=1,p=1$")
