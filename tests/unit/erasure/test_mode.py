"""ERASURE_MODE (shared/erasure/mode.py): `off` unless set to `on`, anything else
refused by name; the retention table; and the start check's refusal of a topic
that would keep personal data in clear past an erasure's deadline."""

import pytest

from shared.erasure.mode import (
    BOUNDED_RETENTION_DAYS,
    ERASURE_DEADLINE_DAYS,
    MAX_KEPT_DAYS,
    ErasureMode,
    ErasureModeError,
    bounded_retention_configs,
    bounded_retention_refusal,
    erasure_mode,
    parse_erasure_mode,
)
from shared.topics import (
    CONSENT_EVENTS,
    CONSENT_LEDGER,
    CONSUMED,
    DECISIONS_LEDGER,
    MESSAGES_DECISIONS,
    MESSAGES_DEFERRED,
    MESSAGES_OUTBOUND,
    MESSAGES_REQUESTS,
    WHATSAPP_INBOUND,
    dlq,
)

DAY_MS = 86_400_000
KAFKA_3_UNLIMITED = "9223372036854775807"


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        (None, ErasureMode.OFF),
        ("", ErasureMode.OFF),
        ("  ", ErasureMode.OFF),
        ("off", ErasureMode.OFF),
        ("on", ErasureMode.ON),
        (" ON\n", ErasureMode.ON),
    ],
)
def test_the_mode_is_off_unless_set_on(raw: str | None, mode: ErasureMode) -> None:
    assert parse_erasure_mode(raw) is mode


@pytest.mark.parametrize("raw", ["true", "1", "yes", "enabled", "of", "on,off"])
def test_anything_else_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(
        ErasureModeError, match=f"ERASURE_MODE must be 'off' .* or 'on', not {raw!r}"
    ):
        parse_erasure_mode(raw)


def test_the_mode_is_read_from_the_environment_given() -> None:
    assert erasure_mode({}) is ErasureMode.OFF
    assert erasure_mode({"ERASURE_MODE": "on"}) is ErasureMode.ON


def test_the_mode_is_read_from_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERASURE_MODE", "on")
    assert erasure_mode() is ErasureMode.ON
    monkeypatch.delenv("ERASURE_MODE")
    assert erasure_mode() is ErasureMode.OFF


def test_the_retention_table_is_docs_erasure_section_2s() -> None:
    assert dict(BOUNDED_RETENTION_DAYS) == {
        WHATSAPP_INBOUND: 7,
        CONSENT_EVENTS: 21,
        MESSAGES_REQUESTS: 7,
        MESSAGES_OUTBOUND: 7,
        MESSAGES_DEFERRED: 7,
        MESSAGES_DECISIONS: 21,
        dlq(WHATSAPP_INBOUND): 14,
        dlq(CONSENT_EVENTS): 14,
        dlq(MESSAGES_REQUESTS): 14,
        dlq(MESSAGES_OUTBOUND): 14,
        dlq(MESSAGES_DEFERRED): 14,
    }
    assert {dlq(t) for t in CONSUMED} <= set(BOUNDED_RETENTION_DAYS)
    assert (ERASURE_DEADLINE_DAYS, MAX_KEPT_DAYS) == (30, 28)


def test_a_bounded_topic_gets_its_retention_a_days_segments_and_an_hours_clock_skew() -> None:
    assert bounded_retention_configs(CONSENT_EVENTS) == {
        "retention.ms": str(21 * DAY_MS),
        "segment.ms": str(DAY_MS),
        "message.timestamp.after.max.ms": "3600000",
    }
    assert bounded_retention_configs(dlq(MESSAGES_REQUESTS)) == {
        "retention.ms": str(14 * DAY_MS),
        "segment.ms": str(DAY_MS),
        "message.timestamp.after.max.ms": "3600000",
    }


@pytest.mark.parametrize("ledger", [CONSENT_LEDGER, DECISIONS_LEDGER])
def test_the_ledgers_are_never_bounded(ledger: str) -> None:
    assert bounded_retention_configs(ledger) == {}


def kept(retention_ms: int, segment_ms: int = DAY_MS, **others: str) -> dict[str, str | None]:
    """A topic's configs as the brokers report them, Kafka 4's defaults but for these."""
    return {
        "retention.ms": str(retention_ms),
        "segment.ms": str(segment_ms),
        "cleanup.policy": "delete",
        "message.timestamp.type": "CreateTime",
        "message.timestamp.after.max.ms": "3600000",
        **others,
    }


def test_every_bounded_topic_as_provisioned_passes_the_check() -> None:
    found = {
        topic: {**kept(0), **bounded_retention_configs(topic)} for topic in BOUNDED_RETENTION_DAYS
    }

    assert bounded_retention_refusal(found, list(found)) is None


@pytest.mark.parametrize(
    ("retention_days", "segment_days"),
    [(7, 1), (27, 1), (21, 7), (1, 27), (0, 28)],
)
def test_retention_and_segments_within_28_days_are_accepted(
    retention_days: int, segment_days: int
) -> None:
    found = {"t": kept(retention_days * DAY_MS, segment_days * DAY_MS)}

    assert bounded_retention_refusal(found, ["t"]) is None


def test_a_topic_kept_for_ever_is_refused_by_name() -> None:
    refusal = bounded_retention_refusal(
        {CONSENT_EVENTS: kept(-1), WHATSAPP_INBOUND: kept(7 * DAY_MS)},
        [CONSENT_EVENTS, WHATSAPP_INBOUND],
    )

    assert refusal is not None
    assert f"{CONSENT_EVENTS} keeps its records for ever (retention.ms=-1)" in refusal
    assert f"{WHATSAPP_INBOUND} " not in refusal
    assert "ERASURE_DEADLINE_DAYS=30" in refusal
    assert "at most 2419200000 ms" in refusal


def test_segments_that_carry_records_past_the_margin_are_refused_with_the_figures() -> None:
    """The brokers' default segment.ms, 7 days, on top of 3 weeks and a day."""
    refusal = bounded_retention_refusal({"t": kept(22 * DAY_MS, 7 * DAY_MS)}, ["t"])

    assert refusal is not None
    assert (
        "t has retention.ms=1900800000 ms (22 days) + segment.ms=604800000 ms (7 days), "
        "2505600000 ms (29 days) in all"
    ) in refusal


def test_a_millisecond_past_the_margin_is_refused() -> None:
    assert bounded_retention_refusal({"t": kept(27 * DAY_MS + 1)}, ["t"]) is not None


def test_every_offending_topic_is_named() -> None:
    found = {"a": kept(-1), "b": kept(30 * DAY_MS), "c": kept(7 * DAY_MS)}

    refusal = bounded_retention_refusal(found, ["a", "b", "c", "d"])

    assert refusal is not None
    assert "a keeps its records for ever" in refusal
    assert "b has retention.ms=2592000000 ms (30 days)" in refusal
    assert "d does not exist" in refusal
    assert "c has" not in refusal
    assert "c keeps" not in refusal


def test_a_compacted_topic_is_refused_whatever_its_retention() -> None:
    refusal = bounded_retention_refusal({"t": kept(DAY_MS, **{"cleanup.policy": "compact"})}, ["t"])

    assert refusal is not None
    assert "t is compacted only (cleanup.policy=compact)" in refusal
    compact_and_delete = kept(DAY_MS, **{"cleanup.policy": "compact,delete"})
    assert bounded_retention_refusal({"t": compact_and_delete}, ["t"]) is None


def test_producer_timestamps_without_a_bound_are_refused_on_create_time_only() -> None:
    """Kafka 3's default takes a record stamped in any future, which then never expires."""
    assert bounded_retention_refusal({"t": kept(DAY_MS)}, ["t"]) is None
    a_day = kept(DAY_MS, **{"message.timestamp.after.max.ms": str(DAY_MS)})
    assert bounded_retention_refusal({"t": a_day}, ["t"]) is None
    unlimited = kept(DAY_MS, **{"message.timestamp.after.max.ms": KAFKA_3_UNLIMITED})
    refusal = bounded_retention_refusal({"t": unlimited}, ["t"])

    assert refusal is not None
    assert "message.timestamp.after.max.ms, at most 86400000 ms" in refusal
    broker_clock = {**unlimited, "message.timestamp.type": "LogAppendTime"}
    assert bounded_retention_refusal({"t": broker_clock}, ["t"]) is None
    older_than_kafka_3_6 = {**kept(DAY_MS), "message.timestamp.after.max.ms": None}
    assert bounded_retention_refusal({"t": older_than_kafka_3_6}, ["t"]) is not None


def test_configs_the_broker_does_not_report_are_refused() -> None:
    refusal = bounded_retention_refusal({"t": {"retention.ms": None}}, ["t"])

    assert refusal is not None
    assert "t reports no usable retention.ms, segment.ms or timestamp bound" in refusal
