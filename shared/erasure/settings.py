"""Reads the keys of crypto-shredding from configuration (docs/erasure.md, section 4),
refusing at start, by name, what cannot be used. No defaults: a public key would
protect nothing. Errors never echo an input, so a mistyped key is not logged."""

from typing import Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.erasure.key_cache import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_CACHE_SIZE,
    CachedDataKeys,
    KeyStore,
)
from shared.erasure.master_keys import MasterKeys
from shared.pseudonyms import Pseudonymizer

INDEX_KEY = "ERASURE_INDEX_KEY"


class MasterKeySettings(BaseSettings):
    """`ERASURE_MASTER_KEYS` and `ERASURE_ACTIVE_KEY`: all the rotation needs."""

    model_config = SettingsConfigDict(
        env_prefix="ERASURE_", extra="ignore", hide_input_in_errors=True
    )

    master_keys: SecretStr = SecretStr("")
    active_key: str = ""

    # The parsers' errors are ValueErrors, which pydantic reports by the message.
    @model_validator(mode="after")
    def _master_keys_usable(self) -> Self:
        self.master_key_ring()
        return self

    def master_key_ring(self) -> MasterKeys:
        return MasterKeys.parse(self.master_keys.get_secret_value(), self.active_key.strip())


class ErasureSettings(MasterKeySettings):
    """What a service that seals or opens personal fields reads: the master keys, the
    index key of the pseudonyms (`ERASURE_INDEX_KEY`, a secret of its own, see
    shared/pseudonyms.py) and the cache's bounds (`ERASURE_KEY_CACHE_SECONDS`,
    `ERASURE_KEY_CACHE_SIZE`)."""

    index_key: SecretStr = SecretStr("")
    # The erasure job waits this long for every process to forget a deleted key:
    # a day at most keeps that well within the 30 days of the deadline.
    key_cache_seconds: float = Field(default=DEFAULT_CACHE_SECONDS, gt=0, le=86_400)
    key_cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=1)

    @model_validator(mode="after")
    def _index_key_usable(self) -> Self:
        if not self.index_key.get_secret_value().strip():
            raise ValueError(
                f"{INDEX_KEY} is not set: base64 of 32 random bytes, the key of the "
                "pseudonyms that stand for identifiers in the ledgers and the key table"
            )
        self.pseudonyms()
        return self

    def pseudonyms(self) -> Pseudonymizer:
        return Pseudonymizer.parse(self.index_key.get_secret_value(), INDEX_KEY)

    def data_keys(self, store: KeyStore) -> CachedDataKeys:
        return CachedDataKeys(
            store,
            self.master_key_ring(),
            max_size=self.key_cache_size,
            ttl_seconds=self.key_cache_seconds,
        )


def describe(error: ValidationError) -> str:
    """The problems on one line, each naming its variable; never a value."""
    problems = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        field = f"ERASURE_{str(problem['loc'][0]).upper()}: " if problem["loc"] else ""
        problems.append(field + message)
    return "; ".join(problems)
