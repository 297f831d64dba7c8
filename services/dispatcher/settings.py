import socket
from datetime import timedelta
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.dispatcher.retention.horizon import window_refusal
from shared.erasure.mode import (
    ERASURE_DEADLINE_DAYS,
    MAX_KEPT_DAYS,
    RETENTION_MARGIN_DAYS,
    ErasureMode,
    parse_erasure_mode,
)
from shared.settings import (
    CommonSettings,
    FrequencySettings,
    QuietHoursSettings,
    read_signing_key,
)


class DispatcherSettings(CommonSettings, FrequencySettings, QuietHoursSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISPATCHER_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8083
    group_id: str = "dispatcher"
    # Its own role (docs/security.md); unset, the owner's DATABASE_URL. Not a field
    # named database_url: that one is DATABASE_URL, the contract's.
    role_database_url: str = Field(
        default="", validation_alias=AliasChoices("DISPATCHER_DATABASE_URL")
    )

    @property
    def service_database_url(self) -> str:
        return self.role_database_url or self.database_url

    # Names the Kafka transactional.id: stable across restarts of one instance
    # (so a restarted instance fences its zombie), distinct between instances.
    instance_id: str = ""

    @model_validator(mode="after")
    def _default_instance_id(self) -> "DispatcherSettings":
        # Host and port: two instances on one host do not fence each other, and
        # a restarted instance keeps its id.
        if not self.instance_id:
            self.instance_id = f"{socket.gethostname()}-{self.http_port}"
        return self

    # Every batch pays a fence, a lookup, an insert and a Kafka transaction whatever
    # its size; under a backlog 2,000 decides 20 % more a second than 500 (make bench).
    # A batch is only as large as what is waiting: at a steady load it stays small.
    max_batch: int = 2000
    fence_timeout_seconds: float = 10.0

    # How long the dispatcher's tables keep a request_id (docs/erasure.md section 7):
    # a repeat within it is recognised, its day partitions dropped after it. Never
    # shorter than the frequency window (below) nor, checked at start, than the
    # retention of the topics the gate reads.
    horizon_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _frequency_window_within_horizon(self) -> Self:
        refusal = window_refusal(
            timedelta(seconds=self.frequency_window_seconds), self.horizon_days
        )
        if refusal is not None:
            raise ValueError(refusal)
        return self

    # Shared by every service, hence unprefixed (shared/erasure/mode.py).
    erasure_mode: ErasureMode = Field(
        default=ErasureMode.OFF, validation_alias=AliasChoices("ERASURE_MODE")
    )

    @field_validator("erasure_mode", mode="before")
    @classmethod
    def _parse_erasure_mode(cls, value: object) -> ErasureMode:
        if isinstance(value, ErasureMode):
            return value
        return parse_erasure_mode(str(value))

    @model_validator(mode="after")
    def _horizon_within_erasure_deadline(self) -> Self:
        # The decisions, deferrals and sends hold recipients and bodies in clear
        # until their day partition is dropped, up to a day past the horizon: in
        # erasure mode that must end before an erasure's deadline.
        if self.erasure_mode is ErasureMode.ON and self.horizon_days > MAX_KEPT_DAYS:
            raise ValueError(
                f"DISPATCHER_HORIZON_DAYS={self.horizon_days} keeps recipients and "
                "message bodies in clear longer than ERASURE_MODE=on allows: at most "
                f"{MAX_KEPT_DAYS} (ERASURE_DEADLINE_DAYS={ERASURE_DEADLINE_DAYS} less "
                f"{RETENTION_MARGIN_DAYS} days for the day partitions' drop)"
            )
        return self

    # Deferred requests handed back to the gate per round, and the pause between
    # rounds: at most 500 a second by default, so live traffic keeps its share.
    release_batch: int = Field(default=500, ge=1)
    release_interval_seconds: float = Field(default=1.0, gt=0)

    # The optional sender to the WhatsApp Cloud API (docs/sender.md): off unless
    # enabled, and then refusing to start without a phone number id and a token.
    sender_enabled: bool = False
    sender_group_id: str = "dispatcher-sender"
    # A group with no committed offset starts at the log end: enabling the sender
    # must not replay the topic's history to the recipients.
    sender_auto_offset_reset: Literal["earliest", "latest"] = "latest"
    graph_api_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"
    phone_number_id: str = ""
    access_token: SecretStr = SecretStr("")
    sender_max_attempts: int = Field(default=6, ge=1)
    sender_backoff_base_seconds: float = 0.5
    sender_backoff_max_seconds: float = 30.0
    sender_retry_after_max_seconds: float = 60.0
    sender_timeout_seconds: float = 10.0
    sender_concurrency: int = Field(default=8, ge=1)
    sender_max_batch: int = 50
    sender_resend_in_flight: bool = True
    # `<key id>:<base64 Ed25519 private key>` (shared/consent/authenticity.py).
    signing_key: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _graph_api_over_tls(self) -> Self:
        # The access token rides in a header: only a local test double may go plain.
        url = urlsplit(self.graph_api_url)
        local = url.hostname in ("localhost", "127.0.0.1", "::1")
        if url.scheme != "https" and not (url.scheme == "http" and local):
            raise ValueError(
                f"DISPATCHER_GRAPH_API_URL must be https (http only on loopback), "
                f"not {self.graph_api_url!r}"
            )
        return self

    @model_validator(mode="after")
    def _sender_configured(self) -> Self:
        if self.sender_enabled and not (
            self.phone_number_id and self.access_token.get_secret_value()
        ):
            raise ValueError(
                "DISPATCHER_SENDER_ENABLED=true needs DISPATCHER_PHONE_NUMBER_ID "
                "and DISPATCHER_ACCESS_TOKEN"
            )
        return self

    @model_validator(mode="after")
    def _sender_can_sign(self) -> Self:
        # The sender writes what a refused send says of the user to the consent log,
        # signed as inbound signs what WhatsApp's webhooks say.
        if self.sender_enabled:
            read_signing_key(self.signing_key, "DISPATCHER_SIGNING_KEY")
        return self
