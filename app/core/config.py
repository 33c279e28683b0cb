"""Service settings: one pydantic-settings class, flat environment variable names.

The speech pipeline and the analyzer read their own settings classes
(`app.ml.settings.PipelineSettings`, `app.ml.analysis.settings.AnalysisSettings`) from the
same environment, so ML code never depends on the service layer.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "your-secret-key", "jwt-key"}
)
MIN_JWT_KEY_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class StorageBackend(StrEnum):
    LOCAL = "local"
    GCS = "gcs"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Environment = Field(default=Environment.DEVELOPMENT, alias="OVOZLY_ENV")
    debug: bool = Field(default=False, alias="DEBUG")
    data_dir: Path = Field(default=Path(".ovozly"), alias="OVOZLY_DATA_DIR")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")

    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=8000, alias="PORT")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://localhost:5173"],
        alias="CORS_ORIGINS",
    )

    jwt_key: str | None = Field(default=None, alias="JWT_KEY")
    jwt_expires_s: int = Field(default=8 * 3600, alias="JWT_EXPIRES_S", ge=60)
    password_min_length: int = Field(default=10, alias="PASSWORD_MIN_LENGTH", ge=8)
    # argon2id cost; the defaults are the RFC 9106 low-memory profile.
    argon2_time_cost: int = Field(default=3, alias="ARGON2_TIME_COST", ge=1)
    argon2_memory_kib: int = Field(default=65536, alias="ARGON2_MEMORY_KIB", ge=8)
    argon2_parallelism: int = Field(default=4, alias="ARGON2_PARALLELISM", ge=1)
    # Login throttling (kept in Redis, so it holds across API processes; the rules are in
    # docs/security.md). Per (account, address): this many failures at full speed, then a
    # doubling block up to the max delay, and at most LOGIN_FAILURES_PER_PAIR per window.
    # Per account: LOGIN_CHECKS_PER_ACCOUNT password checks per window from new addresses,
    # LOGIN_TRUSTED_CHECKS_PER_ACCOUNT from addresses it logged in from before. Per address:
    # LOGIN_UNKNOWN_USERNAMES_PER_ADDRESS failed unknown usernames per window.
    login_free_failures: int = Field(default=5, alias="LOGIN_FREE_FAILURES", ge=1)
    login_failures_per_pair: int = Field(default=10, alias="LOGIN_FAILURES_PER_PAIR", ge=1)
    login_max_delay_s: int = Field(default=300, alias="LOGIN_MAX_DELAY_S", ge=1)
    login_checks_per_account: int = Field(default=20, alias="LOGIN_CHECKS_PER_ACCOUNT", ge=2)
    login_trusted_checks_per_account: int = Field(
        default=10, alias="LOGIN_TRUSTED_CHECKS_PER_ACCOUNT", ge=1
    )
    login_unknown_usernames_per_address: int = Field(
        default=30, alias="LOGIN_UNKNOWN_USERNAMES_PER_ADDRESS", ge=1
    )
    login_window_s: int = Field(default=3600, alias="LOGIN_WINDOW_S", ge=60)
    # Open WebSocket connections per API process and per user.
    ws_max_connections: int = Field(default=2000, alias="WS_MAX_CONNECTIONS", ge=1)
    ws_max_connections_per_user: int = Field(default=20, alias="WS_MAX_CONNECTIONS_PER_USER", ge=1)
    # Subscription events shared by many subscribers are sent as the `next` payload the first
    # subscriber's pipeline made (app/schema/fan_out.py); off: every subscriber runs
    # Strawberry's per-result pipeline (the same frames, at about twice the CPU).
    ws_relay_shared_payloads: bool = Field(default=True, alias="WS_RELAY_SHARED_PAYLOADS")
    # A WebSocket that has not sent `connection_init` this long after opening is closed (4408).
    ws_connection_init_timeout_s: float = Field(
        default=5.0, alias="WS_CONNECTION_INIT_TIMEOUT_S", gt=0, le=60
    )
    admin_username: str = Field(default="admin", alias="OVOZLY_ADMIN_USERNAME")
    admin_password: str | None = Field(default=None, alias="OVOZLY_ADMIN_PASSWORD")

    storage_backend: StorageBackend | None = Field(default=None, alias="STORAGE_BACKEND")
    gcs_bucket: str | None = Field(default=None, alias="GCS_BUCKET")
    google_application_credentials: Path | None = Field(
        default=None, alias="GOOGLE_APPLICATION_CREDENTIALS"
    )
    max_upload_mb: int = Field(default=500, alias="MAX_UPLOAD_MB", ge=1)
    # Longest recording accepted, refused at upload (BAD_USER_INPUT naming the limit).
    max_call_seconds: float = Field(default=4 * 3600, alias="MAX_CALL_SECONDS", gt=0)
    # Upload probing (a full decode proving the file is intact) runs in its own processes:
    # this many at once per API process, each within the time limit, and at most this many
    # uploads in flight per user and API process.
    probe_concurrency: int = Field(default=2, alias="PROBE_CONCURRENCY", ge=1)
    probe_timeout_s: float = Field(default=300.0, alias="PROBE_TIMEOUT_S", gt=0)
    uploads_in_flight_per_user: int = Field(default=10, alias="UPLOADS_IN_FLIGHT_PER_USER", ge=1)

    # Signed audio links: how long one stays valid, and the origin they point at. Unset: the
    # origin the GraphQL request came in on, which in production must be one of
    # ALLOWED_HOSTS (production needs one of the two: a forged Host never picks the origin).
    audio_url_ttl_s: int = Field(default=900, alias="AUDIO_URL_TTL_S", ge=30, le=24 * 3600)
    public_base_url: str | None = Field(default=None, alias="PUBLIC_BASE_URL")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="ALLOWED_HOSTS"
    )
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or networks,
    # comma-separated; "*" trusts every client). None by default: the client address is
    # the peer's, so nobody picks their own throttle bucket.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="FORWARDED_ALLOW_IPS"
    )

    # How long audit events are kept (days); unset keeps them for ever. Applied by
    # `app.services.audit.sweep` (`ovozly audit sweep`, or the worker's retention sweep).
    audit_retention_days: int | None = Field(default=None, alias="AUDIT_RETENTION_DAYS", ge=0)
    # Personal data masked in the audio (docs/data-protection.md): after transcription the
    # worker writes a redacted copy beside the recording, spoken card/phone/... numbers and
    # keypad tones replaced by a beep ("tone") or by "silence". Agents and supervisors only
    # ever hear that copy. KEEP_ORIGINAL_AUDIO=false deletes the original once the copy is
    # stored (admins then hear the copy too, and a reprocess reads the copy).
    redact_audio: bool = Field(default=True, alias="REDACT_AUDIO")
    redaction_fill: Literal["tone", "silence"] = Field(default="tone", alias="REDACTION_FILL")
    keep_original_audio: bool = Field(default=True, alias="KEEP_ORIGINAL_AUDIO")
    # How often every worker runs the retention sweep (also once at start-up).
    retention_sweep_s: float = Field(default=3600.0, alias="RETENTION_SWEEP_S", ge=1)

    # Webhooks: per-attempt timeout, tries, and backoff (base * 2^(try-1), capped).
    webhook_timeout_s: float = Field(default=10.0, alias="WEBHOOK_TIMEOUT_S", gt=0, le=60)
    webhook_max_attempts: int = Field(default=6, alias="WEBHOOK_MAX_ATTEMPTS", ge=1, le=20)
    webhook_backoff_base_s: float = Field(
        default=30.0, alias="WEBHOOK_BACKOFF_BASE_S", ge=0, le=3600
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, alias="WEBHOOK_BACKOFF_MAX_S", ge=0, le=24 * 3600
    )
    # Unset: private, loopback and link-local targets are refused in production only.
    webhook_allow_private: bool | None = Field(default=None, alias="WEBHOOK_ALLOW_PRIVATE")

    worker_concurrency: int = Field(default=1, alias="WORKER_CONCURRENCY", ge=1)
    # Calls longer than this go to a queue of their own, served by one extra slot in every
    # worker: short calls never wait behind long ones (and one long call at a time per
    # worker bounds its memory).
    long_call_seconds: float = Field(default=600.0, alias="LONG_CALL_SECONDS", gt=0)
    # The worker's CPU priority (nice): processing is batch work, so on a machine shared
    # with the API (`make run`, small deployments) logins and queries win the CPU.
    worker_nice: int = Field(default=10, alias="WORKER_NICE", ge=0, le=19)
    job_max_tries: int = Field(default=3, alias="JOB_MAX_TRIES", ge=1)
    job_timeout_base_s: float = Field(default=300.0, alias="JOB_TIMEOUT_BASE_S", gt=0)
    job_timeout_per_audio_s: float = Field(default=3.0, alias="JOB_TIMEOUT_PER_AUDIO_S", gt=0)
    # Recovery of calls whose worker died: a running job holds a lease in Redis for this
    # long (refreshed every quarter of it); a RUNNING call untouched for `recovery_idle_s`
    # without a live lease is re-enqueued by the sweep, which every worker runs this often.
    job_lease_ttl_s: float = Field(default=60.0, alias="JOB_LEASE_TTL_S", ge=1)
    recovery_idle_s: float = Field(default=90.0, alias="RECOVERY_IDLE_S", ge=1)
    recovery_sweep_s: float = Field(default=60.0, alias="RECOVERY_SWEEP_S", ge=1)

    graphql_max_depth: int = Field(default=12, alias="GRAPHQL_MAX_DEPTH", ge=2)
    graphql_max_aliases: int = Field(default=30, alias="GRAPHQL_MAX_ALIASES", ge=1)
    graphql_max_tokens: int = Field(default=2000, alias="GRAPHQL_MAX_TOKENS", ge=50)
    # Document limits checked before validation (app/schema/document_guard.py): fields in
    # the selection with every fragment spread expanded, fields answering one response path,
    # fragment definitions in a document. They keep graphql-core's validation (quadratic in
    # repeated fields) to a few milliseconds on the event loop.
    graphql_max_fields: int = Field(default=500, alias="GRAPHQL_MAX_FIELDS", ge=10)
    graphql_max_field_repeats: int = Field(default=8, alias="GRAPHQL_MAX_FIELD_REPEATS", ge=1)
    graphql_max_fragments: int = Field(default=16, alias="GRAPHQL_MAX_FRAGMENTS", ge=1)
    # Wall-clock budget of one GraphQL request over HTTP, from parsing to the last resolver;
    # a multipart upload has its own, since storing a 500 MB file may take minutes.
    graphql_request_budget_s: float = Field(
        default=60.0, alias="GRAPHQL_REQUEST_BUDGET_S", gt=0, le=3600
    )
    graphql_upload_budget_s: float = Field(
        default=1800.0, alias="GRAPHQL_UPLOAD_BUDGET_S", gt=0, le=24 * 3600
    )
    # Unset: on in development and test, off in production.
    graphiql: bool | None = Field(default=None, alias="GRAPHIQL")
    graphql_introspection: bool | None = Field(default=None, alias="GRAPHQL_INTROSPECTION")

    @field_validator("cors_origins", "allowed_hosts", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment is not Environment.DEVELOPMENT and not jwt_key_is_strong(self.jwt_key):
            raise ValueError(
                "JWT_KEY is missing, a placeholder, or shorter than "
                f"{MIN_JWT_KEY_LENGTH} characters; set a random secret "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if self.public_base_url is not None:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(
                    "PUBLIC_BASE_URL must be an http(s) URL such as https://ovozly.example"
                )
        if self.production and self.public_base_url is None and not self.allowed_hosts:
            raise ValueError(
                "production needs PUBLIC_BASE_URL (the origin of audio links), or ALLOWED_HOSTS "
                "(the Host headers links may be built from)"
            )
        return self

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.production

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is not None:
            return self.graphql_introspection
        return not self.production

    @property
    def production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def webhooks_may_reach_private(self) -> bool:
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return not self.production

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def effective_storage_backend(self) -> StorageBackend:
        if self.storage_backend is not None:
            return self.storage_backend
        return StorageBackend.GCS if self.gcs_bucket else StorageBackend.LOCAL

    @property
    def signing_key(self) -> str:
        if self.jwt_key is None:
            raise RuntimeError("JWT_KEY is not set; run through `ovozly dev` or set it")
        return self.jwt_key


def jwt_key_is_strong(key: str | None) -> bool:
    return (
        key is not None
        and key.strip().lower() not in PLACEHOLDER_SECRETS
        and len(key) >= MIN_JWT_KEY_LENGTH
    )


def persistent_jwt_key(data_dir: Path) -> str:
    """A development key generated once and kept in the data dir, so tokens survive restarts."""
    path = data_dir / "jwt.key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
