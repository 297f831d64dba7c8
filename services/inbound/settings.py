from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.contract.limits import MAX_WEBHOOK_BYTES
from shared.settings import CommonSettings


class InboundSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INBOUND_", extra="ignore", populate_by_name=True)

    http_port: int = 8081
    group_id: str = "inbound"
    # Meta's webhook bodies are a few KB; anything far larger is not one. No more
    # than the consumer reads (parse_webhook refuses larger records as too_large).
    max_body_bytes: int = Field(default=MAX_WEBHOOK_BYTES, gt=0, le=MAX_WEBHOOK_BYTES)
    # Extra keywords on top of the built-in lists: `WORD:lang` pairs, comma-separated.
    extra_opt_out_keywords: str = ""
    extra_opt_in_keywords: str = ""
    confirmation_text_en: str | None = None
    confirmation_text_ru: str | None = None
