"""The password policy: length only, NFKC, never truncated, no email, not on the common list."""

import unicodedata

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
COMMON = "This password is too common; choose another."
PREDICTABLE = "This password is too predictable (repeated or sequential characters)."
LONGEST = (
    "seven quiet herons drift above a silver lake at dawn while the ferryman hums "
    "an old tune and nobody on the far shore counts them twice"
)[:PASSWORD_MAX_LENGTH]


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
        ("1qaz2wsx3edc4rfv", COMMON),
        ("1QAZ2WSX3EDC4RFV", COMMON),
        ("passwordpassword", COMMON),
        ("iloveyou12345678", COMMON),
        ("p a s s w o r d 1 2 3", COMMON),
        ("janedoe likes long walks", "Do not use your email address in your password."),
        ("my roombook passphrase", "Do not use the name of this service in your password."),
        ("x" * PASSWORD_MAX_LENGTH, PREDICTABLE),
        ("aaaaaaaaaaaaaab", PREDICTABLE),
        ("abcdabcdabcdabcd", PREDICTABLE),
        ("abcdefghijklmnop", PREDICTABLE),
        ("1234567890123456", PREDICTABLE),
        ("zyxwvutsrqponmlk", PREDICTABLE),
        ("qwertyuiop[]asdfg", PREDICTABLE),
    ],
)
def test_weak_passwords_are_named(passwords: PasswordService, password: str, problem: str) -> None:
    assert passwords.problems(password=password, email=EMAIL) == [problem]


@pytest.mark.parametrize(
    "password",
    [
        "fifteen chars!!",
        LONGEST,
        "correct horse battery staple",
        "ÄÖÜ äöü ß — ünïcödé pässwörd",
        "no digits no symbols no capitals at all",
        "my abc's are all here",
        "\U0001f642\U0001f643\U0001f609\U0001f60a\U0001f607\U0001f970\U0001f60d\U0001f929"
        "\U0001f618\U0001f617\u263a\U0001f61a\U0001f619\U0001f972\U0001f60b",
    ],
)
def test_length_is_the_only_composition_rule(passwords: PasswordService, password: str) -> None:
    assert passwords.problems(password=password, email=EMAIL) == []


def test_short_local_parts_are_not_forbidden(passwords: PasswordService) -> None:
    assert passwords.problems(password="joe has a long passphrase", email="jo@example.com") == []


def test_length_counts_characters_after_nfkc(passwords: PasswordService) -> None:
    # Ligatures expand: 14 characters typed are "staff office floor", 18, once normalised.
    ligatures = "sta\ufb00 o\ufb03ce \ufb02oor"
    assert len(ligatures) == 14
    assert normalise_password(ligatures) == "staff office floor"
    assert passwords.problems(password=ligatures, email=EMAIL) == []
    # Combining accents shrink: 18 code points typed are 13 characters once composed.
    decomposed = unicodedata.normalize("NFD", "d\u00e9j\u00e0 \u00e9t\u00e9 re\u00e7u")
    assert len(decomposed) == 18
    assert passwords.problems(password=decomposed, email=EMAIL) == ["Use at least 15 characters."]
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
    assert len(LONGEST) == PASSWORD_MAX_LENGTH
    stored = await passwords.hash_new(password=LONGEST, email=EMAIL)
    assert await passwords.verify(password_hash=stored, password=LONGEST)
    # Only the last character differs: a hash that truncated (bcrypt at 72 bytes) would match.
    assert not await passwords.verify(password_hash=stored, password=LONGEST[:-1] + "!")
    assert not await passwords.verify(password_hash=stored, password=LONGEST[:72])


async def test_rehash_only_when_parameters_changed(passwords: PasswordService) -> None:
    current = await passwords.hash_new(password="a fine passphrase here", email=EMAIL)
    assert await passwords.rehash_if_needed(password_hash=current, password="x") is None
    older = PasswordHasher(time_cost=2, memory_kib=64, parallelism=1, concurrency=1)
    stale = await older.hash("a fine passphrase here")
    fresh = await passwords.rehash_if_needed(password_hash=stale, password="a fine passphrase here")
    assert fresh is not None
    assert fresh.startswith("$argon2id$v=19$m=64,t=1,p=1$")
