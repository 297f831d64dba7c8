"""The reply consumer, in memory, under INBOUND_TOPIC_TRUST: under `meta_signed` a record
of whatsapp.inbound.v1 that Meta's signature does not prove can stop messages (an
unsigned OptedOut, no confirmation) and nothing else, and a copy goes to the DLQ as
`unauthenticated_source`; a Meta-signed record is handled as always. Under `any`,
the default, every record is handled as always, whatever its header says."""

import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from services.inbound.domain.classifier import DEFAULT_KEYWORDS
from services.inbound.domain.replies import DEFAULT_CONFIRMATIONS
from services.inbound.meta_signature import RECORD_HEADER, RecordTrust, TopicTrust
from services.inbound.reply_consumer import ReplyProcessor
from shared.consent.authenticity import UNAUTHENTICATED_SOURCE
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, WHATSAPP_INBOUND, dlq
from tests.support.fake_broker import FakeBroker, Published
from tests.support.records import consumer_record
from tests.support.signing import INBOUND_KEY, TRUST
from tests.support.webhooks import APP_SECRET, text_webhook
from tests.support.whatsapp_world import failed, message_from, preference

PHONE = "+79161234567"
BSUID = "RU.12345678901234567890"
Headers = Sequence[tuple[str, bytes | None]]
UNSIGNED: Headers = ()
# A secret that is not the app's: what someone who can write the topic signs with.
FORGER = b"a-forgers-guess-at-the-app-secret"


def metas(value: bytes, secret: bytes = APP_SECRET) -> Headers:
    """The header the webhook receiver keeps: Meta's signature of the body."""
    digest = hmac.new(secret, value, hashlib.sha256).hexdigest()
    return [(RECORD_HEADER, f"sha256={digest}".encode())]


class Inbound:
    """The reply consumer over a broker in memory."""

    def __init__(self, trust: TopicTrust = TopicTrust.META_SIGNED) -> None:
        self.broker = FakeBroker()
        self.processor = ReplyProcessor(
            self.broker,  # type: ignore[arg-type]
            DEFAULT_KEYWORDS,
            DEFAULT_CONFIRMATIONS,
            INBOUND_KEY,
            trust=RecordTrust(trust, APP_SECRET),
        )

    async def consume(
        self, body: dict[str, Any] | bytes, headers: Headers | None = None
    ) -> FakeBroker:
        """Hands it one record, Meta-signed unless `headers` are given; returns what it
        published for that record."""
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        record = consumer_record(
            WHATSAPP_INBOUND,
            0,
            42,
            value,
            key=PHONE[1:].encode(),
            headers=metas(value) if headers is None else headers,
            timestamp_ms=int(time.time() * 1000),
        )
        self.broker.sent.clear()
        await self.processor.process(record)
        return self.broker


def events(broker: FakeBroker) -> list[tuple[str, bool]]:
    """Each event written: its type, and whether inbound's signature on it verifies."""
    return [(orjson.loads(p.value)["type"], signed(p)) for p in broker.on(CONSENT_EVENTS)]


def signed(published: Published) -> bool:
    headers = [(k, v.encode()) for k, v in (published.headers or {}).items()]
    return TRUST.keyring.problem(published.value, headers) is None


def letter(broker: FakeBroker) -> dict[str, str]:
    [copy] = broker.on(dlq(WHATSAPP_INBOUND))
    assert copy.headers is not None
    return copy.headers


def unauthenticated_letters() -> float:
    labels = {"reason": UNAUTHENTICATED_SOURCE}
    return REGISTRY.get_sample_value("inbound_dead_lettered_total", labels) or 0.0


def reply(text: str) -> dict[str, Any]:
    return text_webhook(PHONE[1:], text)


# -- meta_signed: what Meta did not sign ---------------------------------------------


@pytest.mark.parametrize("forger", [None, FORGER], ids=["no-header", "wrong-signature"])
async def test_an_unsigned_start_lifts_nothing_and_is_dead_lettered(forger: bytes | None) -> None:
    body = orjson.dumps(reply("START"))
    headers = UNSIGNED if forger is None else metas(body, forger)
    before = unauthenticated_letters()

    broker = await Inbound().consume(body, headers)

    assert events(broker) == []
    assert broker.on(MESSAGES_REQUESTS) == []
    [copy] = broker.on(dlq(WHATSAPP_INBOUND))
    assert (copy.value, copy.key) == (body, PHONE[1:].encode())
    assert copy.headers is not None
    assert copy.headers["error.reason"] == UNAUTHENTICATED_SOURCE
    assert "not proven to be Meta's webhook" in copy.headers["error.detail"]
    assert copy.headers["source.offset"] == "42"
    assert unauthenticated_letters() == before + 1


async def test_an_unsigned_stop_still_stops_unsigned_and_unconfirmed() -> None:
    broker = await Inbound().consume(reply("STOP"), UNSIGNED)

    assert events(broker) == [("OptedOut", False)]
    [opt_out] = broker.on(CONSENT_EVENTS)
    assert opt_out.headers == {}  # no signature.ed25519: readers know it was not proven
    assert opt_out.key == PHONE.encode()
    assert broker.on(MESSAGES_REQUESTS) == []
    assert letter(broker)["error.reason"] == UNAUTHENTICATED_SOURCE


async def test_a_meta_signed_record_is_signed_and_confirmed_as_always() -> None:
    inbound = Inbound()

    stopped = await inbound.consume(reply("STOP"))
    assert events(stopped) == [("OptedOut", True)]
    [confirmation] = stopped.on(MESSAGES_REQUESTS)
    assert orjson.loads(confirmation.value)["purpose"] == "opt_out_confirmation"
    assert stopped.on(dlq(WHATSAPP_INBOUND)) == []

    started = await inbound.consume(reply("START"))
    assert events(started) == [("OptedIn", True)]
    assert started.on(dlq(WHATSAPP_INBOUND)) == []


async def test_an_unsigned_record_writes_no_identity_links() -> None:
    body = message_from("hello", phone=PHONE, bsuid=BSUID)

    assert ("IdentityLinked", True) in events(await Inbound().consume(body))
    assert events(await Inbound().consume(body, UNSIGNED)) == []


@pytest.mark.parametrize(
    ("body", "written"),
    [
        (preference(PHONE, "stop"), [("MarketingStopped", False)]),
        (preference(PHONE, "resume"), []),
        (failed(PHONE, 131049), [("DeliveryLimited", False)]),
        (failed(PHONE, 131026), [("DeliveryFailed", False)]),
    ],
    ids=["marketing-stop", "marketing-resume", "limited", "undeliverable"],
)
async def test_an_unsigned_platform_signal_counts_only_when_it_restricts(
    body: dict[str, Any], written: list[tuple[str, bool]]
) -> None:
    broker = await Inbound().consume(body, UNSIGNED)

    assert events(broker) == written
    assert letter(broker)["error.reason"] == UNAUTHENTICATED_SOURCE


async def test_only_a_signed_message_shows_an_undeliverable_person_wrote_again() -> None:
    inbound = Inbound()
    await inbound.consume(failed(PHONE, 131026))

    assert events(await inbound.consume(reply("hello"), UNSIGNED)) == []
    assert events(await inbound.consume(reply("hello"))) == [("UserMessaged", True)]


@pytest.mark.parametrize(
    "headers",
    [
        [(RECORD_HEADER, None)],
        [(RECORD_HEADER, ("sha256=" + "é" * 32).encode())],
        [(RECORD_HEADER, b"\xff\xfe")],
        [(RECORD_HEADER, b"sha256=0"), (RECORD_HEADER.upper(), None)],
    ],
    ids=["null", "non-ascii", "not-utf8", "several"],
)
async def test_a_strange_header_is_refused_as_unauthenticated_never_raising(
    headers: Headers,
) -> None:
    broker = await Inbound().consume(reply("START"), headers)

    assert events(broker) == []
    assert letter(broker)["error.reason"] == UNAUTHENTICATED_SOURCE


async def test_an_unsigned_record_that_is_no_webhook_says_both() -> None:
    broker = await Inbound().consume(b"not json", UNSIGNED)

    headers = letter(broker)
    assert headers["error.reason"] == UNAUTHENTICATED_SOURCE
    assert "carries no x-hub-signature-256 header" in headers["error.detail"]
    assert "not UTF-8 JSON" in headers["error.detail"]


# -- any: the header is not read -----------------------------------------------------


async def test_under_any_a_wrong_meta_signature_is_handled_as_today() -> None:
    body = orjson.dumps(reply("START"))
    broker = await Inbound(TopicTrust.ANY).consume(body, metas(body, FORGER))

    assert events(broker) == [("OptedIn", True)]
    assert broker.on(dlq(WHATSAPP_INBOUND)) == []


async def test_under_any_an_unsigned_stop_is_signed_and_confirmed() -> None:
    broker = await Inbound(TopicTrust.ANY).consume(reply("STOP"), UNSIGNED)

    assert events(broker) == [("OptedOut", True)]
    assert len(broker.on(MESSAGES_REQUESTS)) == 1
    assert broker.on(dlq(WHATSAPP_INBOUND)) == []
