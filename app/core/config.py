"""Roombook settings, read from the environment and `.env` with `__` between nested groups."""

from datetime import time
from functools import lru_cache
from ipaddress import ip_network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

DEV_JWT_SECRET = "roombook-development-signing-secret-change-me"  # noqa: S105
DEV_AUDIT_CHAIN_KEY = "roombook-development-audit-chain-key-change-me"
MIN_SECRET_BYTES = 32
REQUESTS_PER_CONNECTION = 4
"""Default requests in progress per pooled connection (pool size + overflow).

A request holds its connection for only part of its time (parsing, the token, the
answer and the log line run without it), and one waiting for a connection is served
within milliseconds, so a few requests per connection keep the pool busy without a
queue; far more would wait out `DATABASE__POOL_TIMEOUT_S` and are better shed at once.
"""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client's multiprocess mode keeps each worker's values (its own variable)."""
OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME_COST = 2


class DatabaseSettings(BaseModel):
    """Connection and pool settings for PostgreSQL."""

    url: SecretStr | None = None
    """SQLAlchemy URL (`postgresql+asyncpg://…`) the API connects with, as its own role
    that owns nothing (see README, Database roles); unset means the embedded server."""
    migration_url: SecretStr | None = None
    """URL migrations connect with, as the role that owns the tables; unset means `url`."""
    pool_size: int = Field(default=10, ge=1)
    """Connections kept open per process."""
    max_overflow: int = Field(default=10, ge=0)
    """Extra connections allowed above the pool size under load."""
    pool_timeout_s: float = Field(default=5.0, gt=0)
    """How long a request waits for a free connection before a 503."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """How long opening a connection may take."""
    statement_timeout_ms: int = Field(default=10_000, ge=0)
    """Server-side limit on any one statement (0 = none); hitting it answers 503."""
    lock_timeout_ms: int = Field(default=3_000, ge=0)
    """Longest wait for a row or table lock (0 = none); hitting it answers 503."""
    idle_in_transaction_timeout_ms: int = Field(default=15_000, ge=0)
    """The server ends a session left idle inside a transaction this long (0 = never)."""
    echo: bool = False
    """Log every SQL statement (through the redacting log pipeline)."""
    retry_attempts: int = Field(default=3, ge=1)
    """How often a request hit by a serialization failure or deadlock is run in all."""

    @property
    def owner_url(self) -> SecretStr | None:
        """The URL migrations and grants connect with: `migration_url`, else `url`."""
        return self.migration_url or self.url


class SecuritySettings(BaseModel):
    """Password hashing and token signing."""

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    """HS256 signing secret, at least 32 bytes; the development default is refused in production."""
    jwt_key_id: str = "k1"
    """`kid` header of tokens signed with the current secret."""
    jwt_previous_secret: SecretStr | None = None
    """The secret before the last rotation; tokens it signed still verify until they expire."""
    jwt_previous_key_id: str | None = None
    """`kid` of the previous secret."""
    jwt_issuer: str = "roombook"
    """`iss` claim issued and required."""
    jwt_audience: str = "roombook-api"
    """`aud` claim issued and required."""
    jwt_leeway_s: int = Field(default=10, ge=0, le=30)
    """Clock skew tolerated on `exp`/`nbf`/`iat` (at most 30 s)."""
    access_token_ttl_s: int = Field(default=600, ge=30)
    """Lifetime of an access token."""
    argon2_time_cost: int = Field(default=2, ge=1)
    """argon2id iterations (production minimum 2)."""
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    """argon2id memory in KiB (production minimum 19456, OWASP)."""
    argon2_parallelism: int = Field(default=1, ge=1)
    """argon2id lanes."""
    hash_concurrency: int = Field(default=2, ge=1)
    """Threads of the hashing pool: password hashes computed at once; more wait their turn."""
    hash_niceness: int = Field(default=19, ge=0, le=19)
    """Nice value of the hashing threads (Linux): 19 lets the event loop take the core first."""


class HttpSettings(BaseModel):
    """What the HTTP edge accepts and answers."""

    cors_origins: list[str] = []
    """Origins allowed to call the API from a browser (JSON list; `*` refused in production)."""
    allowed_hosts: list[str] = ["*"]
    """Accepted `Host` headers (exact or `*.domain`); others get a 400 problem."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger ones get a 413 problem."""
    docs_enabled: bool | None = None
    """Serve /docs, /redoc and /openapi.json; unset means on except in production."""
    trusted_proxies: list[str] = []
    """Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (IPs or CIDR networks)."""
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    """How long the answer to a request with an `Idempotency-Key` is replayed to its retries."""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ip_network(entry, strict=False)
        return value


class ServerSettings(BaseModel):
    """How `make run` and `make serve` start uvicorn."""

    host: str = "127.0.0.1"
    """Interface uvicorn binds."""
    port: int = 8000
    """Port uvicorn listens on."""
    workers: int = Field(default=2, ge=1)
    """Worker processes of `make serve`."""
    max_concurrent_requests: int | None = Field(default=None, ge=1)
    """Requests one process serves at once; more wait (`admission_wait_ms`), then get a 503
    problem with `Retry-After`. Unset means `REQUESTS_PER_CONNECTION` per pooled connection
    (see `concurrency_limit`)."""
    admission_wait_ms: int = Field(default=1000, ge=0)
    """How long a request beyond the limit waits for a place before its 503; 0 sheds at once."""
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    """An idle keep-alive connection is closed after this long."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A request's headers must be complete this long after the connection opens or the
    previous response ends; otherwise the connection is closed (slow-loris clients)."""
    graceful_shutdown_timeout_s: int = Field(default=20, ge=1)
    """On shutdown, running requests get this long to finish before they are cancelled."""
    gc_young_threshold: int = Field(default=10_000, ge=100)
    """Container objects allocated (net of those freed) between two collections of the
    youngest garbage-collector generation in a served process. Python's 700 is less than
    the objects a few requests hold at once, so under load the collector ran every few
    requests and moved live requests' objects into older generations."""


class LogSettings(BaseModel):
    """Log level and format."""

    level: str = "INFO"
    """Lowest level logged."""
    json_format: bool | None = None
    """JSON lines; unset means JSON in production and readable console lines elsewhere."""


class AuthSettings(BaseModel):
    """Accounts, passwords, sessions and the refresh cookie."""

    registration_enabled: bool = True
    """Whether `POST /auth/register` accepts self-service sign-ups (403 problem when off)."""
    password_min_length: int = Field(default=15, ge=8, le=128)
    """Shortest accepted password in characters (NIST SP 800-63B-4, single-factor)."""
    session_idle_timeout_s: int = Field(default=86_400, ge=60)
    """A session unused (no refresh) for this long is over."""
    session_absolute_lifetime_s: int = Field(default=1_209_600, ge=300)
    """A session ends this long after login, however much it is used."""
    refresh_reuse_grace_s: int = Field(default=5, ge=0, le=60)
    """A just-rotated refresh token may be presented again this long (parallel tabs)."""
    refresh_cookie_name: str = "roombook_refresh"
    """Name of the refresh-token cookie."""
    refresh_cookie_secure: bool = True
    """Send the refresh cookie only over HTTPS; turn off only for plain-HTTP local work."""
    login_failures_before_delay: int = Field(default=5, ge=1)
    """Consecutive failed logins on one account before the slow-down starts."""
    login_delay_base_s: int = Field(default=2, ge=1)
    """First delay window; it doubles with each further failure."""
    login_delay_max_s: int = Field(default=900, ge=1)
    """Longest delay window: the slow-down never becomes a permanent lock."""
    device_cookie_name: str = "roombook_device"
    """Name of the signed cookie that marks a browser as one the account logged in from."""
    device_cookie_lifetime_s: int = Field(default=15_552_000, ge=86_400)
    """How long a device cookie is trusted after the login that issued it (180 days)."""
    device_failure_budget: int = Field(default=5, ge=1)
    """Wrong passwords a trusted device may send before its cookie is treated as unknown."""
    throttle_retention_s: int = Field(default=604_800, ge=3_600)
    """`make prune` forgets failure counts untouched for this long (7 days)."""
    bootstrap_admin_email: str | None = None
    """When set, an admin with this email is created at startup if no admin exists yet."""
    bootstrap_admin_password: SecretStr | None = None
    """Password of the bootstrap admin (must pass the password policy)."""
    bootstrap_admin_name: str = "Administrator"
    """Full name of the bootstrap admin."""


class RateLimitSettings(BaseModel):
    """Per-client-IP rate limits on `/auth/*` (the `limits` library)."""

    enabled: bool = True
    """Apply the per-IP limits at all."""
    storage_url: SecretStr | None = None
    """`redis://host:port/db` to share budgets between processes; unset means in-memory."""
    auth_per_ip: str = "60/minute"
    """Budget of every `/auth/*` call per client IP, in `limits` notation."""
    credentials_per_ip: str = "10/minute"
    """Extra budget of login, register and password change per client IP."""
    key_prefix: str = "roombook"
    """Prefix of the rate-limit keys in shared storage."""


class MetricsSettings(BaseModel):
    """Prometheus metrics at `/metrics`, for the scrapers on an allow-list only."""

    enabled: bool = False
    """Serve `/metrics`; the values are recorded either way."""
    allowed_clients: list[str] = []
    """Client addresses (IPs or CIDR networks) answered at `/metrics`; everyone else gets a 404."""
    multiproc_dir: str | None = None
    """Directory where the workers of `make serve` share their values, emptied at start;
    unset means a fresh temporary directory."""

    @field_validator("allowed_clients")
    @classmethod
    def _clients_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ip_network(entry, strict=False)
        return value


class TracingSettings(BaseModel):
    """OpenTelemetry tracing; the rest of its settings are the standard `OTEL_*` variables."""

    enabled: bool = False
    """Send traces of requests, SQL statements and Redis commands (needs the `otel` extra)."""


class AuditSettings(BaseModel):
    """The key of the audit hash chain, which the database never sees."""

    # A refused key must never be echoed in the error.
    model_config = ConfigDict(hide_input_in_errors=True)

    chain_key: SecretStr = SecretStr(DEV_AUDIT_CHAIN_KEY)
    """HMAC-SHA256 key of new entries: 32 bytes or more, the dev default refused in production."""
    chain_key_id: str = Field(default="k1", min_length=1, max_length=32)
    """Id of `chain_key`, stored with every entry it signs."""
    chain_previous_keys: dict[str, SecretStr] = {}
    """Keys of earlier epochs by id (JSON object); entries they signed keep verifying."""
    chain_unkeyed_until_seq: int = Field(default=0, ge=0)
    """Entries up to this seq may carry the unkeyed SHA-256 written before the chain was keyed."""

    @field_validator("chain_key")
    @classmethod
    def _key_is_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("chain_previous_keys")
    @classmethod
    def _previous_keys_are_long_enough(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in value.items():
            if len(key.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"key {key_id!r} must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _key_ids_are_distinct(self) -> "AuditSettings":
        if self.chain_key_id in self.chain_previous_keys:
            raise ValueError("AUDIT__CHAIN_PREVIOUS_KEYS must not reuse AUDIT__CHAIN_KEY_ID")
        return self


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""The day names `BOOKINGS__DEFAULT_OPEN_DAYS` accepts, Monday first."""


class BookingSettings(BaseModel):
    """The default booking policy of every room (each room may override any field), and limits.

    Primitives only: the bookings domain turns these into its `BookingPolicy`.
    """

    # Frozen (and a tuple of days) so the policy built from it can be cached by value.
    model_config = ConfigDict(frozen=True)

    default_opens: time = time(8, 0)
    """Local time rooms open on open days, in each room's own time zone."""
    default_closes: time = time(20, 0)
    """Local time rooms close on open days; `00:00` means the end of the day."""
    default_open_days: tuple[str, ...] = WEEKDAY_NAMES[:5]
    """Days rooms open (JSON list of `mon` … `sun`); the other days are closed."""
    slot_minutes: int = Field(default=15, ge=1, le=1440)
    """Bookings start and end on multiples of this many minutes."""
    min_duration_minutes: int = Field(default=15, ge=1)
    """Shortest booking allowed."""
    max_duration_minutes: int = Field(default=480, ge=1)
    """Longest booking allowed."""
    min_notice_minutes: int = Field(default=0, ge=0)
    """How long before its start a booking must be made."""
    max_ahead_days: int = Field(default=180, ge=1)
    """How far ahead a booking may start."""
    buffer_minutes: int = Field(default=0, ge=0, le=1440)
    """Turnover time after each booking during which the room stays blocked."""
    requires_approval: bool = False
    """New bookings wait as `pending` until a manager approves them."""
    member_cutoff_minutes: int = Field(default=60, ge=0)
    """Members may not change or cancel a booking this close to its start."""
    availability_max_days: int = Field(default=31, ge=1)
    """Longest window one availability query may cover."""
    alternatives_count: int = Field(default=3, ge=0, le=20)
    """Free slots (and free rooms) offered with a refused overlapping booking."""
    series_max_occurrences: int = Field(default=100, ge=1, le=1000)
    """Most occurrences one recurring series may have (after its EXDATEs)."""
    member_max_active_future: int = Field(default=20, ge=0)
    """Most bookings a member may hold that have not ended yet (pending or confirmed); 0: none."""
    member_max_week_hours: int = Field(default=40, ge=0)
    """Most hours a member may hold per calendar week, Monday to Monday in the room's time
    zone (pending or confirmed); 0: no limit."""

    @field_validator("default_open_days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(WEEKDAY_NAMES))
        if unknown:
            raise ValueError(f"unknown day names {unknown}; use {list(WEEKDAY_NAMES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "BookingSettings":
        opens, closes = self.default_opens, self.default_closes
        if any(t.second or t.microsecond or t.tzinfo for t in (opens, closes)):
            raise ValueError("opening times are whole minutes without a time zone")
        if closes != time(0, 0) and opens >= closes:
            raise ValueError("BOOKINGS__DEFAULT_OPENS must come before BOOKINGS__DEFAULT_CLOSES")
        if self.min_duration_minutes > self.max_duration_minutes:
            raise ValueError(
                "BOOKINGS__MIN_DURATION_MINUTES must not exceed BOOKINGS__MAX_DURATION_MINUTES"
            )
        return self


class EventSettings(BaseModel):
    """The booking event stream (Server-Sent Events): its cap, heartbeat, buffers and tickets."""

    max_streams: int = Field(default=200, ge=1)
    """Event streams one process keeps open at once; one more gets a 503 problem."""
    heartbeat_s: float = Field(default=15.0, gt=0, le=60)
    """A quiet stream gets a comment line this often, so proxies do not close it."""
    queue_size: int = Field(default=64, ge=1)
    """Events waiting for one client; a client that falls further behind is disconnected."""
    replay_size: int = Field(default=256, ge=0)
    """Recent events each process keeps for clients that reconnect with `Last-Event-ID`."""
    session_check_s: float = Field(default=15.0, gt=0, le=300)
    """How often open streams' sessions are checked; an ended session's stream closes."""
    ticket_ttl_s: int = Field(default=30, ge=1, le=300)
    """How long a ticket from `POST /bookings/events/ticket` may open a stream (once)."""


class CalendarSettings(BaseModel):
    """The window of bookings an iCalendar feed carries, around the moment it is fetched."""

    model_config = ConfigDict(frozen=True)

    past_days: int = Field(default=30, ge=0, le=366)
    """Bookings that started up to this many days ago stay in a feed."""
    ahead_days: int = Field(default=180, ge=1, le=732)
    """Bookings starting up to this many days ahead are in a feed."""


class Settings(BaseSettings):
    """Every Roombook setting; environment variables win over `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
        env_ignore_empty=True,
        # Validation errors would otherwise print the raw input: secrets and the DB password.
        hide_input_in_errors=True,
    )

    environment: Environment = "development"
    """`development`, `test` or `production` (strict: refuses unsafe settings)."""
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    http: HttpSettings = HttpSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    audit: AuditSettings = AuditSettings()
    bookings: BookingSettings = BookingSettings()
    events: EventSettings = EventSettings()
    calendar: CalendarSettings = CalendarSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()

    @property
    def is_production(self) -> bool:
        """Whether the strict production rules apply."""
        return self.environment == "production"

    @property
    def concurrency_limit(self) -> int:
        """Requests one process serves at once: the setting, else 4 per pooled connection."""
        if self.server.max_concurrent_requests is not None:
            return self.server.max_concurrent_requests
        return REQUESTS_PER_CONNECTION * (self.database.pool_size + self.database.max_overflow)

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


def secret_problems(name: str, secret: SecretStr, *, default: str = DEV_JWT_SECRET) -> list[str]:
    """What makes one signing secret unfit for production."""
    value = secret.get_secret_value()
    problems: list[str] = []
    if value == default:
        problems.append(f"{name} is the development default")
    if len(value.encode()) < MIN_SECRET_BYTES:
        problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
    return problems


def production_problems(settings: Settings) -> list[str]:
    """List what makes these settings unfit for production."""
    security = settings.security
    problems = secret_problems("SECURITY__JWT_SECRET", security.jwt_secret)
    # Tokens signed with the previous secret are accepted too: it must be as strong.
    if security.jwt_previous_secret is not None:
        problems += secret_problems("SECURITY__JWT_PREVIOUS_SECRET", security.jwt_previous_secret)
        if security.jwt_previous_key_id in (None, security.jwt_key_id):
            problems.append(
                "SECURITY__JWT_PREVIOUS_KEY_ID must be set and differ from SECURITY__JWT_KEY_ID"
            )
    if security.argon2_memory_kib < OWASP_MIN_MEMORY_KIB:
        problems.append(f"SECURITY__ARGON2_MEMORY_KIB is below {OWASP_MIN_MEMORY_KIB}")
    if security.argon2_time_cost < OWASP_MIN_TIME_COST:
        problems.append(f"SECURITY__ARGON2_TIME_COST is below {OWASP_MIN_TIME_COST}")
    if "*" in settings.http.cors_origins:
        problems.append("HTTP__CORS_ORIGINS contains the wildcard '*'")
    # Any Host accepted means password-reset links, redirects and caches can be poisoned.
    if "*" in settings.http.allowed_hosts:
        problems.append("HTTP__ALLOWED_HOSTS contains the wildcard '*'")
    problems += metrics_problems(settings.metrics)
    # Anyone who knows the chain key can rewrite the audit trail undetected: the public
    # default or a short key would make the keyed chain no better than an unkeyed one.
    audit = settings.audit
    problems += secret_problems("AUDIT__CHAIN_KEY", audit.chain_key, default=DEV_AUDIT_CHAIN_KEY)
    for key_id, key in audit.chain_previous_keys.items():
        problems += secret_problems(
            f"AUDIT__CHAIN_PREVIOUS_KEYS[{key_id}]", key, default=DEV_AUDIT_CHAIN_KEY
        )
    return problems


def metrics_problems(metrics: MetricsSettings) -> list[str]:
    """What makes the metrics allow-list unfit for production."""
    if not metrics.enabled:
        return []
    # Metrics name routes, error rates and pool use: a map for an attacker, so the
    # operator names the scrapers instead of leaving the list empty or open to all.
    if not metrics.allowed_clients:
        return ["METRICS__ALLOWED_CLIENTS is empty while METRICS__ENABLED is on"]
    if any(ip_network(entry, strict=False).prefixlen == 0 for entry in metrics.allowed_clients):
        return ["METRICS__ALLOWED_CLIENTS admits every address"]
    return []


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings; tests clear the cache or pass their own."""
    return Settings()
