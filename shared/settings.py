"""Holds the settings every service reads. The contract's variables are unprefixed
(CONTRACT.md section 7); each service adds its own with its own prefix."""

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    whatsapp_app_secret: SecretStr = Field(
        default=SecretStr("local-app-secret"), validation_alias=AliasChoices("WHATSAPP_APP_SECRET")
    )
    whatsapp_verify_token: SecretStr = Field(
        default=SecretStr("local-verify-token"),
        validation_alias=AliasChoices("WHATSAPP_VERIFY_TOKEN"),
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_format: Literal["json", "console"] = Field(
        default="console", validation_alias=AliasChoices("LOG_FORMAT")
    )
    http_host: str = "127.0.0.1"


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
