"""Reads how our Kafka clients authenticate and encrypt (docs/contract.md section 7,
beside KAFKA_BOOTSTRAP_SERVERS) and turns it into what aiokafka's clients and
FastStream's KafkaBroker take.

    KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL
    KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN
    KAFKA_SASL_USERNAME       the principal, required with SASL_*
    KAFKA_SASL_PASSWORD       its password, required with SASL_*
    KAFKA_SSL_CAFILE          the CA of the brokers' certificates (default: the system's)
    KAFKA_SSL_CERTFILE        a client certificate, for mutual TLS
    KAFKA_SSL_KEYFILE         its private key (when not in KAFKA_SSL_CERTFILE)

With none of them set, no keyword is added: the clients are built as they always were.
"""

from functools import cache
from ssl import SSLContext
from typing import TYPE_CHECKING, Any, Literal, Self

from aiokafka.helpers import create_ssl_context
from pydantic import FilePath, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password")
_SSL_FIELDS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


class KafkaSecurityError(ValueError):
    """The KAFKA_* security variables do not make a configuration a client can use."""


def _variable(field: str) -> str:
    return f"KAFKA_{field.upper()}"


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", frozen=True)

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: FilePath | None = None
    ssl_certfile: FilePath | None = None
    ssl_keyfile: FilePath | None = None

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(*_SSL_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # A setting the protocol would ignore is refused: it means the protocol is
        # not the one intended, and a client would connect without what was asked.
        protocol = f"KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
        problems = []
        if self.sasl:
            if not self.sasl_username:
                problems.append(f"KAFKA_SASL_USERNAME is not set ({protocol} needs a principal)")
            if not self.sasl_password.get_secret_value():
                problems.append(f"KAFKA_SASL_PASSWORD is not set ({protocol} needs one)")
        else:
            given = [f for f in _SASL_FIELDS if f in self.model_fields_set and getattr(self, f)]
            if given:
                names = ", ".join(map(_variable, given))
                problems.append(
                    f"{names} set, but {protocol} does not authenticate with SASL "
                    "(SASL_PLAINTEXT or SASL_SSL does)"
                )
        files = [f for f in _SSL_FIELDS if getattr(self, f) is not None]
        if files and not self.tls:
            problems.append(
                f"{', '.join(map(_variable, files))} set, but {protocol} does not use TLS "
                "(SSL or SASL_SSL does)"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems.append("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def ssl_context(self) -> SSLContext:
        """Verifies the brokers' certificates and host names (against KAFKA_SSL_CAFILE,
        else the system's CAs), and presents a client certificate when one is given."""
        context: SSLContext = create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
        )
        return context

    def client_options(self) -> dict[str, Any]:
        """Returns the keyword arguments of an aiokafka producer, consumer or admin client."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password.get_secret_value(),
            }
        return options

    def broker_security(self) -> "BaseSecurity | None":
        """Returns what FastStream's KafkaBroker takes as `security` (None: PLAINTEXT)."""
        # Imported here: FastStream takes seconds to import, and only inbound needs it.
        from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

        if self.security_protocol == "PLAINTEXT":
            return None
        context = self.ssl_context() if self.tls else None
        if not self.sasl:
            return BaseSecurity(ssl_context=context)
        kind: type[SASLScram512 | SASLScram256 | SASLPlaintext] = SASLPlaintext
        if self.sasl_mechanism == "SCRAM-SHA-512":
            kind = SASLScram512
        elif self.sasl_mechanism == "SCRAM-SHA-256":
            kind = SASLScram256
        password = self.sasl_password.get_secret_value()
        return kind(self.sasl_username, password, ssl_context=context, use_ssl=self.tls)


def describe(error: ValidationError) -> str:
    """One line per problem, each naming its variable; never a password."""
    lines = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["loc"]:
            field = str(problem["loc"][0])
            shown = "" if field == "sasl_password" else f" (got {problem['input']!r})"
            lines.append(f"{_variable(field)}: {message}{shown}")
        else:
            lines.append(message)
    return "; ".join(lines)


@cache
def kafka_security() -> KafkaSecurity:
    """Reads the environment once per process. KafkaSecurityError names the variables
    that are wrong, so a service refuses to start rather than fail to connect."""
    try:
        return KafkaSecurity()
    except ValidationError as exc:
        raise KafkaSecurityError(f"Kafka security settings: {describe(exc)}") from None


def security_options() -> dict[str, Any]:
    """Returns the keyword arguments every aiokafka client of ours is built with."""
    return kafka_security().client_options()
