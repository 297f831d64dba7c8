from typing import Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from services.consent.tokens import InvalidTokensError, Tokens
from shared.erasure.settings import ErasureSettings, describe
from shared.pseudonyms import InvalidPseudonymKeyError, Pseudonymizer
from shared.settings import CommonSettings, TrustSettings


class ConsentSettings(CommonSettings, TrustSettings):
    model_config = SettingsConfigDict(env_prefix="CONSENT_", extra="ignore", populate_by_name=True)

    http_port: int = 8082
    group_id: str = "consent-projector"
    # The ledger writers' groups; each one's transactional ids are `<group>-<partition>`.
    ledger_group_id: str = "consent-ledger"
    decisions_ledger_group_id: str = "consent-ledger-decisions"
    max_batch: int = 1000
    # The projector's and the query API's own roles (docs/security.md), one pool
    # each: CONSENT_PROJECTOR_DATABASE_URL, CONSENT_API_DATABASE_URL. Unset, the
    # owner's DATABASE_URL serves both, as it did before the roles.
    projector_database_url: str = ""
    api_database_url: str = ""

    # Who may read the API, as token hashes with scopes (services/consent/tokens.py);
    # empty: loopback callers only.
    api_tokens: str = ""
    # The key of the pseudonyms that stand for identifiers in the access records.
    pseudonym_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("PSEUDONYM_KEY")
    )

    # How long after an erasure request it is carried out: the person may still
    # withdraw it meanwhile. A day by default, well within the 30 days of the deadline.
    erasure_grace_seconds: float = Field(
        default=86_400.0,
        ge=0,
        le=20 * 86_400,
        validation_alias=AliasChoices("ERASURE_GRACE_SECONDS"),
    )
    erasure_job_interval_seconds: float = Field(
        default=60.0, gt=0, le=3600, validation_alias=AliasChoices("ERASURE_JOB_INTERVAL_SECONDS")
    )

    @model_validator(mode="after")
    def _access_readable(self) -> Self:
        try:
            Tokens.parse(self.api_tokens)
            Pseudonymizer.parse(self.pseudonym_key.get_secret_value())
        except (InvalidTokensError, InvalidPseudonymKeyError) as exc:
            raise ValueError(str(exc)) from None
        try:
            self.erasure()
        except ValidationError as exc:
            raise ValueError(describe(exc)) from None
        return self

    def tokens(self) -> Tokens:
        return Tokens.parse(self.api_tokens)

    def pseudonyms(self) -> Pseudonymizer:
        return Pseudonymizer.parse(self.pseudonym_key.get_secret_value())

    def erasure(self) -> ErasureSettings:
        """The keys of crypto-shredding (`ERASURE_MASTER_KEYS`, `ERASURE_ACTIVE_KEY`,
        `ERASURE_INDEX_KEY`, docs/erasure.md section 4), read from the environment."""
        return ErasureSettings()

    def erasure_index(self) -> Pseudonymizer:
        return self.erasure().pseudonyms()

    @property
    def projector_url(self) -> str:
        return self.projector_database_url or self.database_url

    @property
    def api_url(self) -> str:
        return self.api_database_url or self.database_url
