"""Holds the settings every service reads. The contract's variables are unprefixed
(CONTRACT.md section 7); each service adds its own with its own prefix."""

from datetime import timedelta
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.consent.authenticity import (
    InvalidKeyError,
    Keyring,
    SigningKey,
    Trust,
    UnsignedRestrictions,
    parse_positions,
)
from shared.consent.platform_signals import DEFAULT_PROMOTIONAL
from shared.contract.purposes import Purpose
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy
from shared.kafka.security import kafka_security

LOCAL_DATABASE_URL = "postgresql://consent:consent@127.0.0.1:55432/consent"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    database_url: str = Field(
        default=LOCAL_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL")
    )
    # No defaults: a public value would let anyone sign a webhook. Inbound refuses
    # to start without strong ones; `make up` and `make run` generate local ones.
    whatsapp_app_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("WHATSAPP_APP_SECRET")
    )
    whatsapp_verify_token: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("WHATSAPP_VERIFY_TOKEN")
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_format: Literal["json", "console"] = Field(
        default="console", validation_alias=AliasChoices("LOG_FORMAT")
    )
    http_host: str = "127.0.0.1"
    # The admin listener: metrics, health, readiness and the API's docs, which the
    # internet must not see (inbound's public port faces Meta). Port 0: the public
    # port plus 1000 (8081 -> 9081).
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=0, ge=0, le=65535)
    # The contract serves /healthz, /readyz and /metrics on the public ports too;
    # false keeps them on the admin listener only.
    ops_on_public_port: bool = Field(
        default=True, validation_alias=AliasChoices("OPS_ON_PUBLIC_PORT")
    )
    # What a platform's marketing stop (user_preferences, WhatsApp 131050) revokes:
    # clause 3.2 purposes, comma-separated. Inbound reads it for webhooks, the
    # sender for its own refused sends (shared/consent/platform_signals.py says
    # why the default is educational_material alone).
    promotional: str = Field(
        default=",".join(p.value for p in DEFAULT_PROMOTIONAL),
        validation_alias=AliasChoices("PROMOTIONAL_PURPOSES"),
    )

    @property
    def promotional_purposes(self) -> tuple[Purpose, ...]:
        return tuple(Purpose(p.strip()) for p in self.promotional.split(",") if p.strip())

    @model_validator(mode="after")
    def _kafka_security_is_usable(self) -> Self:
        # The KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_* / KAFKA_SSL_* variables
        # (shared/kafka/security.py): a service refuses to start, naming the
        # variable, rather than fail at its first connection.
        kafka_security()
        return self

    @model_validator(mode="after")
    def _promotional_are_purposes(self) -> Self:
        names = [p.strip() for p in self.promotional.split(",") if p.strip()]
        unknown = [n for n in names if n not in _PURPOSE_NAMES]
        if unknown or not names:
            raise ValueError(
                "PROMOTIONAL_PURPOSES must list clause 3.2 purposes, comma-separated "
                f"({sorted(_PURPOSE_NAMES)}); not {unknown or 'empty'}"
            )
        return self


_PURPOSE_NAMES = frozenset(p.value for p in Purpose)


class TrustSettings(BaseSettings):
    """Reads whose signatures the readers of the log believe (shared/consent/authenticity.py):
    the projector, the rebuild and the audit, from the same unprefixed variables.

    `EVENT_VERIFY_KEYS`: `<key id>:<base64 Ed25519 public key>[:<Type>+<Type>...]`,
    comma-separated; list the new key beside the old while a writer's key is rotated,
    and limit a writer's key to the event types it makes. No default: without a key no
    event from WhatsApp could lift a STOP, so the readers refuse to start.

    `EVENT_SIGNATURES_FROM`: `<partition>:<offset>` pairs of consent.events.v1, for a
    log written before signing: its earlier records count as they did then."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    event_verify_keys: str = Field(default="", validation_alias=AliasChoices("EVENT_VERIFY_KEYS"))
    unsigned_restrictions: UnsignedRestrictions = Field(
        default=UnsignedRestrictions.APPLY,
        validation_alias=AliasChoices("UNSIGNED_RESTRICTIONS"),
    )
    event_signatures_from: str = Field(
        default="", validation_alias=AliasChoices("EVENT_SIGNATURES_FROM")
    )

    @model_validator(mode="after")
    def _keys_are_readable(self) -> Self:
        if not self.event_verify_keys.strip():
            raise ValueError(
                "EVENT_VERIFY_KEYS is not set: the public keys of inbound (and of the "
                "dispatcher's sender) that sign events from WhatsApp (make up and make run "
                "generate local ones into .local/secrets.env)"
            )
        try:
            Keyring.parse(self.event_verify_keys)
            parse_positions(self.event_signatures_from)
        except InvalidKeyError as exc:
            raise ValueError(str(exc)) from None
        return self

    def trust(self) -> Trust:
        return Trust(
            Keyring.parse(self.event_verify_keys),
            self.unsigned_restrictions,
            parse_positions(self.event_signatures_from),
        )


def read_signing_key(setting: SecretStr, name: str) -> SigningKey:
    """Reads a writer's private key, refusing a missing or unreadable one by name."""
    value = setting.get_secret_value().strip()
    if not value:
        raise ValueError(
            f"{name} is not set: the Ed25519 key that signs events from WhatsApp "
            "(make up and make run generate a local one into .local/secrets.env)"
        )
    try:
        return SigningKey.parse(value, name)
    except InvalidKeyError as exc:
        raise ValueError(str(exc)) from None


class FrequencySettings(BaseSettings):
    """Reads the clause 6.1 limits: the dispatcher enforces them and the audit
    rechecks them, both reading the same variables."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    frequency_limit: int = FrequencyPolicy.model_fields["limit"].default
    frequency_window_seconds: int = int(
        FrequencyPolicy.model_fields["window"].default.total_seconds()
    )

    def policy(self) -> FrequencyPolicy:
        return FrequencyPolicy(
            limit=self.frequency_limit, window=timedelta(seconds=self.frequency_window_seconds)
        )


class QuietHoursSettings(BaseSettings):
    """Reads the clause 6 quiet hours: the dispatcher defers by them and the audit
    rechecks them, both reading `DISPATCHER_QUIET_HOURS`.

    A JSON object of windows in the recipient's local time, by phonenumbers region
    code, with "default" for the rest: {"default": "09:00-20:00", "US": "08:00-21:00"},
    or per weekday, "Mon-Sat 09:00-21:00; Sun 12:00-21:00". The default window,
    09:00-20:00, is the strictest of the FCC's, Florida's and Texas's; "00:00-00:00"
    is the whole day, which turns quiet hours off."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    quiet_hours: dict[str, str] = Field(default_factory=lambda: {"default": "09:00-20:00"})

    def quiet_hours_policy(self) -> QuietHoursPolicy:
        return QuietHoursPolicy.from_settings(self.quiet_hours)
