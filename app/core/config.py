"""Roombook settings, read from the environment and `.env` with `__` between nested groups."""

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

DEV_JWT_SECRET = "roombook-development-signing-secret-change-me"  # noqa: S105
MIN_SECRET_BYTES = 32
OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME_COST = 2


class DatabaseSettings(BaseModel):
    """Connection and pool settings for PostgreSQL."""

    url: SecretStr | None = None
    """SQLAlchemy URL (`postgresql+asyncpg://…`); unset means the embedded server."""
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_s: float = Field(default=5.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=10_000, ge=0)
    echo: bool = False
    retry_attempts: int = Field(default=3, ge=1)
    """How often a request hit by a serialization failure or deadlock is run in all."""


class SecuritySettings(BaseModel):
    """Password hashing and token signing."""

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_key_id: str = "k1"
    jwt_previous_secret: SecretStr | None = None
    """The secret before the last rotation; tokens it signed still verify until they expire."""
    jwt_previous_key_id: str | None = None
    jwt_issuer: str = "roombook"
    jwt_audience: str = "roombook-api"
    jwt_leeway_s: int = Field(default=10, ge=0, le=30)
    access_token_ttl_s: int = Field(default=600, ge=30)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    hash_concurrency: int = Field(default=2, ge=1)
    """Password hashes computed at once in the thread pool; more wait their turn."""


class HttpSettings(BaseModel):
    """What the HTTP edge accepts and answers."""

    cors_origins: list[str] = []
    allowed_hosts: list[str] = ["*"]
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    docs_enabled: bool | None = None
    """Serve /docs, /redoc and /openapi.json; unset means on except in production."""
    trusted_proxies: list[str] = []
    """Peers whose `X-Forwarded-For` is believed (IP addresses or CIDR networks)."""


class ServerSettings(BaseModel):
    """How `make run` and `make serve` start uvicorn."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=2, ge=1)


class LogSettings(BaseModel):
    """Log level and format."""

    level: str = "INFO"
    json_format: bool | None = None
    """JSON lines; unset means JSON in production and readable console lines elsewhere."""


class Settings(BaseSettings):
    """Every Roombook setting; environment variables win over `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    environment: Environment = "development"
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    http: HttpSettings = HttpSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()

    @property
    def is_production(self) -> bool:
        """Whether the strict production rules apply."""
        return self.environment == "production"

    @property
    def docs_enabled(self) -> bool:
        """Whether the interactive docs and the OpenAPI document are served."""
        if self.http.docs_enabled is not None:
            return self.http.docs_enabled
        return not self.is_production

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.is_production:
            problems = production_problems(self)
            if problems:
                raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self


def production_problems(settings: Settings) -> list[str]:
    """List what makes these settings unfit for production."""
    problems: list[str] = []
    secret = settings.security.jwt_secret.get_secret_value()
    if secret == DEV_JWT_SECRET:
        problems.append("SECURITY__JWT_SECRET is the development default")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        problems.append(f"SECURITY__JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
    if settings.security.argon2_memory_kib < OWASP_MIN_MEMORY_KIB:
        problems.append(f"SECURITY__ARGON2_MEMORY_KIB is below {OWASP_MIN_MEMORY_KIB}")
    if settings.security.argon2_time_cost < OWASP_MIN_TIME_COST:
        problems.append(f"SECURITY__ARGON2_TIME_COST is below {OWASP_MIN_TIME_COST}")
    if "*" in settings.http.cors_origins:
        problems.append("HTTP__CORS_ORIGINS contains the wildcard '*'")
    return problems


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings; tests clear the cache or pass their own."""
    return Settings()
