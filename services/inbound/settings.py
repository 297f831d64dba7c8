from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.inbound.meta_signature import TopicTrust
from shared.contract.limits import MAX_WEBHOOK_BYTES
from shared.settings import CommonSettings, read_signing_key


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
    # `<key id>:<base64 Ed25519 private key>`: signs every event from WhatsApp, so that
    # only what a user said can lift their STOP (shared/consent/authenticity.py).
    signing_key: SecretStr = SecretStr("")
    # Which records of whatsapp.inbound.v1 speak for a user. `any`: every one, as the
    # contract lets any gateway write the topic. `meta_signed`: only those whose
    # `x-hub-signature-256` header is Meta's signature of the value; of the others only
    # restrictions count (services/inbound/meta_signature.py).
    topic_trust: TopicTrust = TopicTrust.ANY

    @model_validator(mode="after")
    def _secrets_are_strong(self) -> Self:
        problems = [
            weakness
            for name, value, least in (
                ("WHATSAPP_APP_SECRET", self.whatsapp_app_secret, MIN_APP_SECRET),
                ("WHATSAPP_VERIFY_TOKEN", self.whatsapp_verify_token, MIN_VERIFY_TOKEN),
            )
            if (weakness := secret_weakness(name, value.get_secret_value(), least))
        ]
        try:
            read_signing_key(self.signing_key, "INBOUND_SIGNING_KEY")
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError(
                "; ".join(problems) + " (make up and make run generate local ones into "
                ".local/secrets.env; anywhere else set Meta's app secret, your own token "
                "and a signing key)"
            )
        return self


# Meta's app secrets are 32 hex characters; a verify token is ours to choose.
MIN_APP_SECRET = 32
MIN_VERIFY_TOKEN = 16
# Values that were once defaults, published in this repository's history.
PUBLIC_VALUES = frozenset({"local-app-secret", "local-verify-token"})


def secret_weakness(name: str, value: str, least: int) -> str | None:
    """Names what makes a secret unfit to authenticate anything, or None."""
    if not value:
        return f"{name} is not set"
    if value in PUBLIC_VALUES:
        return f"{name} is a public default"
    if len(value) < least:
        return f"{name} has {len(value)} characters, fewer than {least}"
    return None
