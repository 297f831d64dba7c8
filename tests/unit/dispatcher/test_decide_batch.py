"""The gate's pure core, in memory: given the states, the dispatcher's own facts
and a batch of records, when the batch is decided, then one decision per
request_id; and when it is routed, then what it publishes."""

from collections.abc import Mapping
from datetime import timedelta

import orjson
from aiokafka import ConsumerRecord

from services.dispatcher.gate.decide import decide_batch, parse_batch
from services.dispatcher.gate.publication import OutputTopics, plan_publication
from services.dispatcher.gate.store import DecisionRow
from shared.consent.state import SubjectState
from shared.contract.decisions import Decision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.contract.requests import SendRequest
from shared.dispatch.facts import DispatchFacts
from shared.dispatch.rules import FrequencyPolicy
from tests.unit.domain.builders import SUBJECT, at, fold, granted, opted_out, request

REMINDER = Purpose.EVENT_REMINDER
NOW = at(60)
TOPICS = OutputTopics(decisions="test.decisions", outbound="test.outbound")
REQUESTS = "messages.requests.v1"


def records(*values: SendRequest | bytes, start: int = 0) -> list[ConsumerRecord]:
    """The batch as read: one record each, at consecutive offsets of partition 0."""
    batch = []
    for offset, value in enumerate(values, start=start):
        raw = value if isinstance(value, bytes) else value.model_dump_json().encode()
        key = SUBJECT.encode()
        batch.append(ConsumerRecord(REQUESTS, 0, offset, 0, 0, key, raw, None, 0, 0, []))
    return batch


def decided(
    batch: list[ConsumerRecord],
    states: Mapping[str, SubjectState],
    facts: DispatchFacts | None = None,
    frequency: FrequencyPolicy | None = None,
) -> dict[str, DecisionRow]:
    frequency = frequency or FrequencyPolicy()
    facts = facts or DispatchFacts(frequency.window)
    return decide_batch(parse_batch(batch), states, facts, NOW, frequency, {0: 7})


def verdict(row: DecisionRow) -> tuple[str, str]:
    return row.decision, row.reason


def consented_to_reminders() -> dict[str, SubjectState]:
    return {SUBJECT: fold(granted(REMINDER, event_id="g1", occurred_at=at(0)))}


# ---------------------------------------------------------------- decide_batch


def test_a_repeated_request_id_within_the_batch_is_decided_once_on_its_first_record() -> None:
    send = request(REMINDER, request_id="r1")

    rows = decided(records(send, send), consented_to_reminders())

    assert list(rows) == ["r1"]
    assert verdict(rows["r1"]) == (Decision.DISPATCHED, Reason.CONSENTED)
    assert rows["r1"].source_offset == 0


def test_a_consented_dispatch_counts_toward_the_cap_of_the_next_in_the_batch() -> None:
    frequency = FrequencyPolicy(limit=2)
    facts = DispatchFacts(frequency.window, {SUBJECT: [NOW - timedelta(hours=1)]})

    rows = decided(
        records(*(request(REMINDER, request_id=f"r{i}") for i in range(3))),
        consented_to_reminders(),
        facts,
        frequency,
    )

    assert [verdict(r) for r in rows.values()] == [
        (Decision.DISPATCHED, Reason.CONSENTED),
        (Decision.DROPPED, Reason.FREQUENCY_CAPPED),
        (Decision.DROPPED, Reason.FREQUENCY_CAPPED),
    ]


def test_dispatches_older_than_the_window_do_not_count() -> None:
    frequency = FrequencyPolicy(limit=1)
    facts = DispatchFacts(frequency.window, {SUBJECT: [NOW - frequency.window]})

    rows = decided(records(request(REMINDER)), consented_to_reminders(), facts, frequency)

    assert [verdict(r) for r in rows.values()] == [(Decision.DISPATCHED, Reason.CONSENTED)]


def test_an_opt_outs_confirmation_is_spent_once_within_the_batch() -> None:
    states = {SUBJECT: fold(granted(REMINDER), opted_out(event_id="o1", occurred_at=at(1)))}
    confirm = [
        request(OPT_OUT_CONFIRMATION, request_id=f"c{i}", opt_out_event_id="o1") for i in (1, 2)
    ]

    rows = decided(records(*confirm), states)

    assert verdict(rows["c1"]) == (Decision.DISPATCHED, Reason.OPT_OUT_CONFIRMATION)
    assert verdict(rows["c2"]) == (Decision.DROPPED, Reason.CONFIRMATION_NOT_ALLOWED)


def test_a_confirmation_already_recorded_is_not_sent_again() -> None:
    states = {SUBJECT: fold(opted_out(event_id="o1"))}
    facts = DispatchFacts(timedelta(hours=24), confirmed={"o1"})

    rows = decided(
        records(request(OPT_OUT_CONFIRMATION, request_id="c1", opt_out_event_id="o1")),
        states,
        facts,
    )

    assert verdict(rows["c1"]) == (Decision.DROPPED, Reason.CONFIRMATION_NOT_ALLOWED)


def test_an_invalid_request_with_a_request_id_is_decided_invalid_request() -> None:
    raw = orjson.dumps({"request_id": "bad-1", "recipient": "not a phone", "purpose": 7})

    rows = decided(records(raw), {})

    assert verdict(rows["bad-1"]) == (Decision.DROPPED, Reason.INVALID_REQUEST)
    assert rows["bad-1"].outbound_json is None


def test_a_request_without_a_usable_request_id_gets_no_decision() -> None:
    assert decided(records(b"not json"), {}) == {}


def test_the_decision_records_the_fence_and_the_dispatch_carries_the_send() -> None:
    rows = decided(records(request(REMINDER, request_id="r1")), consented_to_reminders())

    decision = orjson.loads(rows["r1"].decision_json)
    assert decision["fence"] == {"0": 7}
    assert decision["consent_event_id"] == "g1"
    assert rows["r1"].outbound_json is not None


def test_the_facts_given_are_left_as_they_were() -> None:
    facts = DispatchFacts(timedelta(hours=24))

    decided(records(request(REMINDER)), consented_to_reminders(), facts)

    assert facts.in_window(SUBJECT, NOW) == 0


# ---------------------------------------------------------------- plan_publication


def test_a_new_decision_is_published_with_its_send_on_the_given_topics() -> None:
    batch = parse_batch(records(request(REMINDER, request_id="r1")))
    rows = decide_batch(
        batch, consented_to_reminders(), DispatchFacts(timedelta(1)), NOW, FrequencyPolicy(), {}
    )

    outputs = plan_publication(batch, {}, rows, TOPICS)

    assert [topic for topic, *_ in outputs.sends] == [TOPICS.decisions, TOPICS.outbound]
    assert outputs.decided == [rows["r1"]]


def test_a_redelivery_republishes_the_stored_decision() -> None:
    batch = parse_batch(records(request(REMINDER, request_id="r1")))
    stored = decide_batch(
        batch, consented_to_reminders(), DispatchFacts(timedelta(1)), NOW, FrequencyPolicy(), {}
    )

    outputs = plan_publication(batch, stored, {}, TOPICS)

    assert [value for _, _, value, _ in outputs.sends] == [
        stored["r1"].decision_json,
        stored["r1"].outbound_json,
    ]
    assert (outputs.republished, outputs.duplicates, outputs.decided) == (1, 0, [])


def test_a_request_id_decided_from_another_record_publishes_nothing() -> None:
    first = parse_batch(records(request(REMINDER, request_id="r1")))
    stored = decide_batch(
        first, consented_to_reminders(), DispatchFacts(timedelta(1)), NOW, FrequencyPolicy(), {}
    )
    again = parse_batch(records(request(REMINDER, request_id="r1"), start=5))

    outputs = plan_publication(again, stored, {}, TOPICS)

    assert outputs.sends == []
    assert (outputs.republished, outputs.duplicates) == (0, 1)


def test_withheld_request_ids_publish_nothing_but_the_rest_do() -> None:
    batch = parse_batch(
        records(request(REMINDER, request_id="r1"), request(REMINDER, request_id="r2"))
    )
    rows = decide_batch(
        batch, consented_to_reminders(), DispatchFacts(timedelta(1)), NOW, FrequencyPolicy(), {}
    )

    outputs = plan_publication(batch, {}, rows, TOPICS, withheld={"r1"})

    assert outputs.decided == [rows["r2"]]
    assert [headers for *_, headers in outputs.sends] == [[("request_id", b"r2")]] * 2


def test_an_unusable_record_goes_to_the_dlq_with_its_one_decision() -> None:
    raw = orjson.dumps({"request_id": "bad-1", "purpose": 7})
    batch = parse_batch(records(raw))
    rows = decide_batch(batch, {}, DispatchFacts(timedelta(1)), NOW, FrequencyPolicy(), {})

    outputs = plan_publication(batch, {}, rows, TOPICS)

    assert [topic for topic, *_ in outputs.sends] == [f"{REQUESTS}.dlq", TOPICS.decisions]
    assert len(outputs.dead_lettered) == 1
