"""Logs carry no personal data (clause 5.3): every written form of a phone number
and every BSUID is masked, however deep, in our events and in the stdlib records
of the libraries, while the ids, times and positions we debug with survive."""

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import structlog
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.structured_logging import configure_logging, mask_text

LIBRARY_LOGGERS = ["uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "aiokafka"]


class Contact(NamedTuple):
    wa_id: str
    user_id: str


# written -> masked: a number keeps the audit report's form from 10 digits on,
# only its last two digits below.
WRITTEN_FORMS = [
    ("+79161234567", "+7916*****67"),
    ("79161234567", "7916*****67"),  # a wa_id
    ("+7 916 123-45-67", "+7916*****67"),
    ("8 (916) 123-45-67", "8916*****67"),
    ("+1 (415) 555-2671", "+1415*****71"),
    ("(415) 555-2671", "4155****71"),
    ("415-555-2671", "4155****71"),
    ("+44 20 7946 0958", "+4420******58"),
    ("555-2671", "*****71"),
    ("5552671", "*****71"),
    ("12345678", "******78"),
    ("123456789", "*******89"),
    ("%2B79161234567", "+7916*****67"),  # a URL path's `+`
]
BSUIDS = [
    ("US.13491208655302741918", "US.******************18"),
    ("US.ENT.11815799212886844830", "US.ENT.******************30"),  # a parent_user_id
    ("HK.a1b2c3d4e5f6g7", "HK.************g7"),
]
NOT_PERSONAL = [
    "2026-12-03T14:36:14Z",
    "2026-12-03T14:36:14.123456+00:00",
    "9f1c2b7e-4a1d-4c8e-9b1a-426614174000",  # a UUID whose last group is all digits
    "wamid.HBgLNzkxNjEyMzQ1NjcVAgARGBI",
    "wamid.1234567890abcdef1234567890abcdef",
    "10.0.0.1:9092",
    "192.168.100.200",
    "127.0.0.1:8081",
    "messages.requests.v1",
    "took 0.1234567 s",
    "Fetch offset 18234567 is out of range",
    "OffsetAndMetadata(offset=18234567, metadata='')",
    "The message is 1048589 bytes when serialized",
    "Language.EN",
]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _flat(text: str) -> str:
    return re.sub(r"[\s()+\-]|%2B", "", text)


def _assert_no_raw(output: str, *raw: str) -> None:
    """Assert that no raw value appears, as written or with its separators dropped."""
    for value in raw:
        assert value not in output
        assert _flat(value) not in _flat(output)


class Captured:
    """Configure logging as a service does, but write both chains into one buffer.

    capsys hands each test phase a new stderr, so a stream bound while a fixture
    sets up is closed by the time the test logs.
    """

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def configure(self, fmt: str = "json") -> None:
        configure_logging("INFO", fmt)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=self.buffer))
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:
                handler.setStream(self.buffer)

    def text(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]


@pytest.fixture
def logs() -> Iterator[Captured]:
    """Yield logging configured in JSON, and put back every logger it touched."""
    root = logging.getLogger()
    touched = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [(lg, lg.handlers[:], lg.propagate, lg.level) for lg in [root, *touched]]
    captured = Captured()
    captured.configure()
    yield captured
    structlog.reset_defaults()
    for lg, handlers, propagate, level in saved:
        lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level


@pytest.mark.parametrize(("written", "masked"), WRITTEN_FORMS + BSUIDS)
def test_every_written_form_is_masked_in_the_message_and_the_values(
    logs: Captured, written: str, masked: str
) -> None:
    structlog.get_logger().info(f"reply from {written}", body=f"STOP ({written})")
    [line] = logs.lines()
    assert line["event"] == f"reply from {masked}"
    assert line["body"] == f"STOP ({masked})"
    _assert_no_raw(json.dumps(line), written)


def test_values_are_masked_however_deep(logs: Captured) -> None:
    structlog.get_logger().info(
        "webhook",
        value={
            "contacts": [{"wa_id": "79161234567", "user_id": "US.13491208655302741918"}],
            "messages": ({"from": "+7 916 123-45-67", "text": {"body": "call 555-2671"}},),
            "+79161234568": "opted_out",
        },
        recipients={"+79161234569"},
        contact=Contact("79161234570", "US.ENT.11815799212886844830"),
        error=ValueError("not a valid phone number: '+79161234571'"),
        raw=b'{"from": "79161234572"}',
    )
    [line] = logs.lines()
    assert line["value"]["contacts"] == [
        {"wa_id": "7916*****67", "user_id": "US.******************18"}
    ]
    assert line["value"]["messages"][0]["text"]["body"] == "call *****71"
    assert line["value"]["+7916*****68"] == "opted_out"
    assert line["contact"] == ["7916*****70", "US.ENT.******************30"]
    raw = [f"7916123456{n}" for n in range(7, 10)] + [f"7916123457{n}" for n in range(3)]
    _assert_no_raw(json.dumps(line), *raw, "13491208655302741918", "11815799212886844830")


def test_an_int_is_masked_only_under_a_key_that_names_a_number(logs: Captured) -> None:
    structlog.get_logger().info(
        "sent", to=79161234567, wa_id=5552671, offset=18234567, partition=2, took_ms=1234567
    )
    [line] = logs.lines()
    assert (line["to"], line["wa_id"]) == ("7916*****67", "*****71")
    assert (line["offset"], line["partition"], line["took_ms"]) == (18234567, 2, 1234567)


def test_an_exceptions_text_is_masked(logs: Captured) -> None:
    try:
        raise ValueError("input_value='+79161234567', from US.13491208655302741918")
    except ValueError:
        structlog.get_logger().exception("batch failed, retrying")
    [line] = logs.lines()
    assert (
        "ValueError: input_value='+7916*****67', from US.******************18" in line["exception"]
    )
    _assert_no_raw(json.dumps(line), "+79161234567", "US.13491208655302741918")


def test_stdlib_records_are_stamped_masked_and_rendered_like_ours(logs: Captured) -> None:
    logging.getLogger("aiokafka").warning(
        "fetch for %s at offset %s failed: %s", "(415) 555-2671", 18234567, {"to": ["5552671"]}
    )
    logging.getLogger("asyncpg").warning("no row for US.13491208655302741918")
    structlog.get_logger().warning("ours")
    aiokafka, asyncpg, ours = logs.lines()
    assert (
        aiokafka["event"] == "fetch for 4155****71 at offset 18234567 failed: {'to': ['*****71']}"
    )
    assert asyncpg["event"] == "no row for US.******************18"
    assert aiokafka["logger"] == "aiokafka"
    assert aiokafka["level"] == asyncpg["level"] == "warning"
    assert aiokafka.keys() - {"logger"} == ours.keys()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", aiokafka["timestamp"])


def test_uvicorn_exceptions_are_masked(logs: Captured) -> None:
    try:
        raise RuntimeError("GET /v1/subjects/%2B79161234567/consent")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    [line] = logs.lines()
    assert line["logger"] == "uvicorn.error"
    assert "RuntimeError: GET /v1/subjects/+7916*****67/consent" in line["exception"]
    _assert_no_raw(json.dumps(line), "79161234567")


def test_aiokafka_stays_at_warning(logs: Captured) -> None:
    logging.getLogger("aiokafka").info("rebalance")
    logging.getLogger("aiokafka").warning("coordinator lost")
    assert [line["event"] for line in logs.lines()] == ["coordinator lost"]


def test_library_loggers_lose_their_own_handlers_and_propagate(logs: Captured) -> None:
    own = logging.StreamHandler(io.StringIO())  # as uvicorn's dictConfig and faststream install
    for name in ("uvicorn", "faststream"):
        logging.getLogger(name).addHandler(own)
        logging.getLogger(name).propagate = False
    logs.configure()
    logging.getLogger("uvicorn").warning("to +79161234567")
    logging.getLogger("faststream").warning("to +79161234567")
    assert [line["event"] for line in logs.lines()] == ["to +7916*****67"] * 2
    assert isinstance(own.stream, io.StringIO)
    assert own.stream.getvalue() == ""


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_ids_times_and_positions_are_not_masked(logs: Captured, text: str) -> None:
    structlog.get_logger().info(text, value=text, nested={"values": [text]})
    logging.getLogger("aiokafka").warning(text)
    ours, theirs = logs.lines()
    assert (ours["event"], ours["value"], ours["nested"]["values"]) == (text, text, [text])
    assert theirs["event"] == text


def test_a_webhooks_epoch_timestamp_is_not_masked(logs: Captured) -> None:
    structlog.get_logger().info(
        "webhook", message={"from": "79161234567", "timestamp": "1795773600"}
    )
    [line] = logs.lines()
    assert line["message"] == {"from": "7916*****67", "timestamp": "1795773600"}


def test_the_console_renderer_is_masked_too(logs: Captured) -> None:
    logs.configure("console")
    structlog.get_logger().info("sent", to="+79161234567")
    logging.getLogger("asyncpg").warning("to %s", "US.13491208655302741918")
    text = logs.text()
    assert "to=+7916*****67" in text
    assert "to US.******************18" in text
    _assert_no_raw(text, "+79161234567", "US.13491208655302741918")


def test_both_chains_write_to_stderr(logs: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")  # in the test itself, bound to this phase's stderr
    structlog.get_logger().info("ours", to="+79161234567")
    logging.getLogger("uvicorn.error").warning("theirs to %s", "+79161234567")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line.get("to")) for line in lines] == [
        ("ours", "+7916*****67"),
        ("theirs to +7916*****67", None),
    ]


_DATE_SHAPED = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    """Draw 7 to 15 digits in groups joined by spaces, dashes or nothing, one in parentheses."""
    digits = draw(st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True))
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=4)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    in_parentheses = draw(st.integers(-1, len(groups) - 2))
    written = draw(st.sampled_from(["", "+"]))
    for i, group in enumerate(groups):
        if i:
            written += draw(st.sampled_from([" ", "-", ""]))
        written += f"({group})" if i == in_parentheses else group
    return written


@given(written=written_numbers(), before=st.sampled_from(["", "to ", "from: ", "/"]))
def test_no_written_number_of_7_to_15_digits_survives(written: str, before: str) -> None:
    assume(not _DATE_SHAPED.match(written))
    masked = mask_text(f"{before}{written} replied STOP")
    assert _digits(written) not in _digits(masked)
