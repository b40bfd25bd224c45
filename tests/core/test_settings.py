"""Settings: nested environment variables, `.env`, secrets, caching and the production checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app import cli
from app.core.config import (
    DEV_AUDIT_CHAIN_KEY,
    DEV_JWT_SECRET,
    AuditSettings,
    HttpSettings,
    SecuritySettings,
    Settings,
    get_settings,
    production_problems,
)
from app.factory import create_app

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "a-production-signing-secret-that-is-long-enough"
GOOD_CHAIN_KEY = "a-production-audit-chain-key-that-is-long-enough"
DB_URL = "postgresql+asyncpg://roombook:db-pass-1234@db.internal:5432/roombook"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Roombook variable from the outer environment and no `.env` unless a test writes one."""
    for name in list(os.environ):
        if name == "ENVIRONMENT" or "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def production(**overrides: object) -> Settings:
    """Production settings that pass every check unless overridden."""
    values: dict[str, object] = {
        "environment": "production",
        "security": SecuritySettings(jwt_secret=SecretStr(GOOD_SECRET)),
        "http": HttpSettings(allowed_hosts=["api.roombook.dev"]),
        "audit": AuditSettings(chain_key=SecretStr(GOOD_CHAIN_KEY)),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def previous(secret: str, *, key_id: str | None = "k0") -> SecuritySettings:
    """Security settings with a good current secret and the given previous one."""
    return SecuritySettings(
        jwt_secret=SecretStr(GOOD_SECRET),
        jwt_previous_secret=SecretStr(secret),
        jwt_previous_key_id=key_id,
    )


def test_defaults_are_development() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.is_production is False
    assert settings.docs_enabled is True
    assert settings.database.url is None
    assert settings.database.pool_size == 10
    assert settings.security.jwt_key_id == "k1"
    assert settings.http.allowed_hosts == ["*"]


def test_nested_groups_read_double_underscore_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("DATABASE__URL", DB_URL)
    monkeypatch.setenv("SECURITY__JWT_LEEWAY_S", "5")
    monkeypatch.setenv("HTTP__CORS_ORIGINS", '["https://app.roombook.dev"]')
    monkeypatch.setenv("LOG__JSON_FORMAT", "true")
    settings = Settings(_env_file=None)
    assert settings.database.pool_size == 3
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == DB_URL
    assert settings.security.jwt_leeway_s == 5
    assert settings.http.cors_origins == ["https://app.roombook.dev"]
    assert settings.log.json_format is True


def test_dotenv_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "SERVER__PORT=9000\nLOG__LEVEL=DEBUG\nDATABASE__ECHO=true\nSECURITY__JWT_SECRET=\n"
    )
    monkeypatch.setenv("SERVER__PORT", "9100")
    settings = Settings()
    assert settings.server.port == 9100
    assert settings.log.level == "DEBUG"
    assert settings.database.echo is True
    # An empty value means "unset", as in `.env.example`.
    assert settings.security.jwt_secret.get_secret_value() == DEV_JWT_SECRET


def test_unknown_settings_are_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SOMETHING_ELSE=1\nDATABASE__NO_SUCH_SETTING=2\n")
    monkeypatch.setenv("HTTP__NOT_A_SETTING", "x")
    monkeypatch.setenv("UNRELATED", "y")
    settings = Settings()
    assert settings.environment == "development"
    assert not hasattr(settings.http, "not_a_setting")


def test_invalid_values_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE__POOL_SIZE", "many")
    monkeypatch.setenv("SECURITY__JWT_SECRET", "some-secret-value")
    with pytest.raises(ValidationError, match=r"database\.pool_size") as caught:
        Settings(_env_file=None)
    assert "some-secret-value" not in str(caught.value)
    assert "many" not in str(caught.value)


def test_secrets_never_appear_in_repr_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE__URL", DB_URL)
    monkeypatch.setenv("SECURITY__JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("SECURITY__JWT_PREVIOUS_SECRET", "previous-" + GOOD_SECRET)
    settings = Settings(_env_file=None)
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.database),
    ):
        assert GOOD_SECRET not in text
        assert "db-pass-1234" not in text
        assert "**********" in text
    assert isinstance(settings.security.jwt_secret, SecretStr)
    assert settings.security.jwt_secret.get_secret_value() == GOOD_SECRET


def test_get_settings_is_cached_and_clearable(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("SERVER__PORT", "8100")
    first = get_settings()
    assert first is get_settings()
    monkeypatch.setenv("SERVER__PORT", "8200")
    assert get_settings().server.port == 8100
    get_settings.cache_clear()
    assert get_settings().server.port == 8200
    assert get_settings() is not first


def test_valid_production_settings_pass() -> None:
    settings = production(
        http=HttpSettings(
            cors_origins=["https://app.roombook.dev"], allowed_hosts=["api.roombook.dev"]
        ),
        security=SecuritySettings(
            jwt_secret=SecretStr(GOOD_SECRET),
            jwt_previous_secret=SecretStr("previous-" + GOOD_SECRET),
            jwt_previous_key_id="k0",
        ),
    )
    assert settings.is_production is True
    assert production_problems(settings) == []
    assert settings.docs_enabled is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"security": SecuritySettings()}, "SECURITY__JWT_SECRET is the development default"),
        (
            {"security": SecuritySettings(jwt_secret=SecretStr("x" * 31))},
            "SECURITY__JWT_SECRET is shorter than 32 bytes",
        ),
        (
            {
                "security": SecuritySettings(
                    jwt_secret=SecretStr(GOOD_SECRET), argon2_memory_kib=19455
                )
            },
            "SECURITY__ARGON2_MEMORY_KIB is below 19456",
        ),
        (
            {"security": SecuritySettings(jwt_secret=SecretStr(GOOD_SECRET), argon2_time_cost=1)},
            "SECURITY__ARGON2_TIME_COST is below 2",
        ),
        (
            {
                "http": HttpSettings(
                    cors_origins=["https://app.roombook.dev", "*"], allowed_hosts=["a.dev"]
                )
            },
            "HTTP__CORS_ORIGINS contains the wildcard '*'",
        ),
        ({"http": HttpSettings()}, "HTTP__ALLOWED_HOSTS contains the wildcard '*'"),
        (
            {"http": HttpSettings(allowed_hosts=["api.roombook.dev", "*"])},
            "HTTP__ALLOWED_HOSTS contains the wildcard '*'",
        ),
        (
            {"security": previous(DEV_JWT_SECRET)},
            "SECURITY__JWT_PREVIOUS_SECRET is the development default",
        ),
        (
            {"security": previous("x" * 31)},
            "SECURITY__JWT_PREVIOUS_SECRET is shorter than 32 bytes",
        ),
        (
            {"security": previous("previous-" + GOOD_SECRET, key_id=None)},
            "SECURITY__JWT_PREVIOUS_KEY_ID must be set and differ from SECURITY__JWT_KEY_ID",
        ),
        (
            {"security": previous("previous-" + GOOD_SECRET, key_id="k1")},
            "SECURITY__JWT_PREVIOUS_KEY_ID must be set and differ from SECURITY__JWT_KEY_ID",
        ),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        production(**overrides)
    text = str(caught.value)
    assert "unsafe production settings" in text
    assert message in text
    assert GOOD_SECRET not in text


def test_cli_names_a_short_previous_secret_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_settings: None
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECURITY__JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("SECURITY__JWT_PREVIOUS_SECRET", "short-old-secret")
    monkeypatch.setenv("SECURITY__JWT_PREVIOUS_KEY_ID", "k0")
    monkeypatch.setenv("HTTP__ALLOWED_HOSTS", '["api.roombook.dev"]')
    with pytest.raises(SystemExit) as caught:
        cli.main(["openapi", "-o", str(tmp_path / "openapi.json")])
    text = str(caught.value.code)
    assert text.startswith("roombook: refusing to start:")
    assert "SECURITY__JWT_PREVIOUS_SECRET is shorter than 32 bytes" in text
    assert "short-old-secret" not in text


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({}, "AUDIT__CHAIN_KEY is the development default"),
        (
            {"chain_previous_keys": {"k0": SecretStr(DEV_AUDIT_CHAIN_KEY)}},
            "AUDIT__CHAIN_PREVIOUS_KEYS[k0] is the development default",
        ),
    ],
)
def test_production_refuses_the_public_audit_chain_key(
    audit: dict[str, object], message: str
) -> None:
    values = audit or {"chain_key": SecretStr(DEV_AUDIT_CHAIN_KEY)}
    with pytest.raises(ValidationError) as caught:
        production(audit=AuditSettings(**values))  # type: ignore[arg-type]

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"chain_key": SecretStr("k" * 31)}, "must be at least 32 bytes"),
        ({"chain_previous_keys": {"k0": SecretStr("k" * 31)}}, "key 'k0' must be at least 32"),
        (
            {"chain_previous_keys": {"k1": SecretStr("k" * 32)}},
            "must not reuse AUDIT__CHAIN_KEY_ID",
        ),
    ],
)
def test_audit_chain_keys_are_checked_in_every_environment(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AuditSettings(**values)  # type: ignore[arg-type]

    assert message in str(caught.value)
    assert "k" * 31 not in str(caught.value)


def test_production_lists_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        production(
            security=SecuritySettings(jwt_secret=SecretStr("short"), argon2_time_cost=1),
            http=HttpSettings(cors_origins=["*"]),
        )
    text = str(caught.value)
    for fragment in ("shorter than 32 bytes", "ARGON2_TIME_COST", "wildcard"):
        assert fragment in text
    assert "short'" not in text


def test_unsafe_settings_are_fine_outside_production() -> None:
    settings = Settings(_env_file=None, environment="test", http=HttpSettings(cors_origins=["*"]))
    assert production_problems(settings) == [
        "SECURITY__JWT_SECRET is the development default",
        "HTTP__CORS_ORIGINS contains the wildcard '*'",
        "HTTP__ALLOWED_HOSTS contains the wildcard '*'",
        "AUDIT__CHAIN_KEY is the development default",
    ]


def test_docs_setting_overrides_the_environment_default() -> None:
    hosts = ["api.roombook.dev"]
    assert production(http=HttpSettings(docs_enabled=True, allowed_hosts=hosts)).docs_enabled
    assert Settings(_env_file=None, http=HttpSettings(docs_enabled=False)).docs_enabled is False


def run_python(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the interpreter on the project with only the given Roombook variables."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter with fixed arguments
        [sys.executable, *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_app_import_refuses_default_secret_in_production(tmp_path: Path) -> None:
    result = run_python(tmp_path, "-c", "from app.main import app", ENVIRONMENT="production")
    assert result.returncode != 0
    assert "unsafe production settings" in result.stderr
    assert "SECURITY__JWT_SECRET is the development default" in result.stderr
    assert DEV_JWT_SECRET not in result.stderr


def test_cli_refuses_wildcard_cors_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_settings: None
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECURITY__JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("DATABASE__URL", DB_URL)
    monkeypatch.setenv("HTTP__CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("HTTP__ALLOWED_HOSTS", '["api.roombook.dev"]')
    target = tmp_path / "openapi.json"
    with pytest.raises(SystemExit) as caught:
        cli.main(["openapi", "-o", str(target)])
    text = str(caught.value.code)
    assert text.startswith("roombook: refusing to start:")
    assert "HTTP__CORS_ORIGINS contains the wildcard '*'" in text
    assert GOOD_SECRET not in text
    assert "db-pass-1234" not in text
    assert not target.exists()


def test_create_app_refuses_a_short_secret_outside_production(tmp_path: Path) -> None:
    """The signing key length is enforced wherever tokens are made, not only in production."""
    settings = Settings(
        _env_file=None, security=SecuritySettings(jwt_secret=SecretStr("too-short"))
    )
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app(settings)
