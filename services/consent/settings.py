from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class ConsentSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="CONSENT_", extra="ignore", populate_by_name=True)

    http_port: int = 8082
    group_id: str = "consent-projector"
    max_batch: int = 1000
