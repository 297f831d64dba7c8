"""Holds the settings every service reads. The contract's variables are unprefixed
(CONTRACT.md section 7); each service adds its own with its own prefix."""

from datetime import timedelta
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.consent.platform_signals import DEFAULT_PROMOTIONAL
from shared.contract.purposes import Purpose
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy

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
