"""Configuration from `HUB_*` environment variables (see README "Configuration")."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "collabhub-dev-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    """Every knob of the hub; unset values give the embedded single-process defaults."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".hub-data")
    mongodb_url: str | None = None
    mongodb_db: str = "collabhub"
    redis_url: str | None = None
    # store client deadlines (hub/store.py, docs/reliability.md): one read / one whole transaction,
    # and finding + connecting to the server; a dead or hung store then fails requests quickly
    mongodb_timeout_s: float = 10.0
    mongodb_select_timeout_s: float = 3.0
    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "collabhub"

    # request limits (OWASP GraphQL cheat sheet)
    max_body_bytes: int = 2_000_000
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_batch: int = 10
    max_cost: int = 5_000  # estimated query cost (schema/limits.py): fields times `first` of lists
    rate_limit_per_min: int = 600  # HTTP requests (batch: per operation) per user (hub/ratelimit.py)
    rate_limit_anon_per_min: int = 300  # HTTP requests per client IP without a valid token
    rate_limit_subscribe_per_min: int = 600  # WebSocket `subscribe` messages per user
    ws_max_operations: int = 50  # operations open at once on one WebSocket
    ws_max_message_bytes: int = 1_000_000  # larger WebSocket frames close the connection (1009)
    # browser pages of other origins allowed to open the WebSocket (same-origin always is);
    # JSON list, e.g. HUB_WS_ALLOWED_ORIGINS='["https://support.example.com"]'
    ws_allowed_origins: list[str] = Field(default_factory=list)

    # realtime
    event_retention_days: float = 30.0
    subscriber_queue: int = 1_000
    outbox_interval_s: float = 2.0
    outbox_age_s: float = 1.0  # the relay republishes unpublished events older than this
    prune_interval_s: float = 60.0  # how often events past retention are pruned
    test_drop_publish: bool = False  # fault injection: skip publish after commit (relay delivers)
    token_recheck_s: float = 5.0
    ws_init_timeout_s: float = 10.0
    # fan-out fast path (hub/fanout.py, docs/performance.md): caseActivity/articleActivity execute
    # and encode once per event and selection, not once per subscriber; off = strawberry per subscriber
    ws_fanout: bool = True
    ws_per_message_deflate: bool = False  # compressing every frame per socket costs more than the fan-out

    # presence (hub/presence.py): entry TTL refreshed by heartbeats, flap window, sweep period
    presence_ttl_s: float = 30.0
    presence_flap_s: float = 1.0
    presence_sweep_s: float = 0.5

    # uploads
    max_upload_bytes: int = 10_000_000
    upload_types: list[str] = Field(
        default_factory=lambda: [
            "text/plain", "text/csv", "application/json", "application/pdf",
            "application/zip", "image/png", "image/jpeg", "image/gif", "application/x-log",
            "application/octet-stream",
        ]
    )

    # webhooks (hub/webhooks.py, docs/webhooks.md): retry i waits about base * 2**(i-1), capped
    webhooks_enabled: bool = True  # run the delivery worker in this process
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 10.0
    webhook_retry_max_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    webhook_lease_s: float = 60.0  # a claimed delivery is retried by any process after this
    webhook_poll_s: float = 1.0
    webhook_concurrency: int = 8
    webhook_allow_private: bool | None = None  # None: allowed unless HUB_ENV=production (SSRF guard)

    # observability (hub/logging.py, docs/operations.md)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Settings:
        if self.env == "production" and (self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32):
            raise ValueError("HUB_JWT_SECRET must be set to a secret of 32+ characters in production")
        return self

    @cached_property
    def production(self) -> bool:
        return self.env == "production"
