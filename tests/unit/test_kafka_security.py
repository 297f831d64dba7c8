"""The KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* variables as every client
reads them (shared/kafka/security.py): nothing set changes nothing, a usable set
becomes aiokafka's and FastStream's arguments alike, and an unusable one is refused
naming the variable."""

from collections.abc import Iterator
from ssl import SSLContext

import certifi
import pytest
from faststream.kafka.security import parse_security
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.kafka.security import KafkaSecurityError, kafka_security, security_options
from shared.settings import CommonSettings

CA = certifi.where()
SCRAM = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_USERNAME": "inbound",
    "KAFKA_SASL_PASSWORD": "s3cret-password",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Only what a test sets; the settings read afresh, and forgotten after."""
    for name in (
        "SECURITY_PROTOCOL",
        "SASL_MECHANISM",
        "SASL_USERNAME",
        "SASL_PASSWORD",
        "SSL_CAFILE",
        "SSL_CERTFILE",
        "SSL_KEYFILE",
    ):
        monkeypatch.delenv(f"KAFKA_{name}", raising=False)
    kafka_security.cache_clear()
    yield monkeypatch
    kafka_security.cache_clear()


def given(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    kafka_security.cache_clear()


def test_nothing_set_builds_the_clients_as_before() -> None:
    assert security_options() == {}
    assert kafka_security().broker_security() is None


def test_scram_sha_512_is_the_default_mechanism(environment: pytest.MonkeyPatch) -> None:
    given(environment, **SCRAM)
    assert security_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "inbound",
        "sasl_plain_password": "s3cret-password",
    }


def test_sasl_over_tls_verifies_the_brokers_with_the_ca_given(
    environment: pytest.MonkeyPatch,
) -> None:
    given(environment, **SCRAM | {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SSL_CAFILE": CA})
    options = security_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], SSLContext)
    assert options["ssl_context"].check_hostname


@pytest.mark.parametrize(
    ("variables", "kind"),
    [
        (SCRAM, SASLScram512),
        (SCRAM | {"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, SASLScram256),
        (SCRAM | {"KAFKA_SASL_MECHANISM": "PLAIN"}, SASLPlaintext),
        (SCRAM | {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CAFILE": CA}, SASLScram512),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": CA}, None),
    ],
)
def test_faststream_connects_as_the_aiokafka_clients_do(
    environment: pytest.MonkeyPatch, variables: dict[str, str], kind: type | None
) -> None:
    given(environment, **variables)
    security = kafka_security().broker_security()
    if kind is not None:
        assert type(security) is kind
    faststream = parse_security(security)
    ours = security_options()
    assert faststream.pop("ssl_context") is not None or "ssl_context" not in ours
    ours.pop("ssl_context", None)
    assert faststream == ours


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SASL_USERNAME is not set"),
        (SCRAM | {"KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD is not set"),
        ({"KAFKA_SASL_USERNAME": "inbound"}, "KAFKA_SASL_USERNAME set, but"),
        (SCRAM | {"KAFKA_SSL_CAFILE": CA}, "KAFKA_SSL_CAFILE set, but"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": CA},
            "KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL"}, "KAFKA_SECURITY_PROTOCOL: Input should be"),
        (SCRAM | {"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM: Input should be"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
            "KAFKA_SSL_CAFILE: Path does not point to a file",
        ),
    ],
)
def test_an_unusable_setting_is_refused_naming_the_variable(
    environment: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    given(environment, **variables)
    with pytest.raises(KafkaSecurityError, match=named) as refused:
        kafka_security()
    assert "s3cret-password" not in str(refused.value)


def test_a_service_refuses_to_start_without_its_password(
    environment: pytest.MonkeyPatch,
) -> None:
    given(environment, **SCRAM | {"KAFKA_SASL_PASSWORD": ""})
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD is not set"):
        CommonSettings()
