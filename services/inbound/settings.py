from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class InboundSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INBOUND_", extra="ignore", populate_by_name=True)

    http_port: int = 8081
    group_id: str = "inbound"
    # Meta's webhook bodies are a few KB; anything far larger is not one.
    max_body_bytes: int = 1024 * 1024
    # Extra keywords on top of the built-in lists: `WORD:lang` pairs, comma-separated.
    extra_opt_out_keywords: str = ""
    extra_opt_in_keywords: str = ""
    confirmation_text_en: str | None = None
    confirmation_text_ru: str | None = None
