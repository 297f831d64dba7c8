"""The first record per id in log order, which records an insert kept, which of
the others reuse an id with another payload, and a Kafka record as a LoggedEvent."""

from dataclasses import dataclass
from datetime import timedelta

from shared.consent.event_identity import Recorded, conflicts, event_id_of, split_inserted
from shared.consent.logged_record import logged_event
from shared.kafka.log_order import broker_time, first_per_id
from shared.rejection import Rejected
from tests.support.signing import TRUST
from tests.unit.domain.builders import T0, at, granted, logged, opted_out


@dataclass(frozen=True)
class Record:
    value: bytes | None
    timestamp: int
    partition: int = 1
    offset: int = 7
    headers: tuple[tuple[str, bytes], ...] = ()


def test_the_first_record_per_id_in_log_order_is_kept_whatever_the_arrival_order() -> None:
    later = logged(granted(event_id="e1"), partition=0, offset=5, log_time=at(2))
    earlier = logged(opted_out(event_id="e1"), partition=2, offset=0, log_time=at(1))
    other = logged(granted(event_id="e2"), partition=1, offset=0, log_time=at(3))

    first = first_per_id([later, other, earlier], event_id_of)

    assert first == {"e1": earlier, "e2": other}
    assert list(first) == ["e1", "e2"]  # in log order


def test_on_one_broker_time_the_lower_partition_then_offset_comes_first() -> None:
    a = logged(granted(event_id="e"), partition=1, offset=0, log_time=at(1))
    b = logged(granted(event_id="e"), partition=0, offset=9, log_time=at(1))

    assert first_per_id([a, b], event_id_of) == {"e": b}


def test_an_insert_keeps_the_first_record_of_each_inserted_id_and_repeats_the_rest() -> None:
    first = logged(granted(event_id="e1"), offset=0, log_time=at(1))
    again = logged(granted(event_id="e1"), offset=1, log_time=at(2))
    known = logged(granted(event_id="e0"), offset=2, log_time=at(3))

    fresh, repeated = split_inserted([first, again, known], {"e1"})

    assert fresh == [first]
    assert repeated == [again, known]


def test_a_reused_id_with_another_payload_is_a_conflict_and_a_redelivery_is_not() -> None:
    grant = granted(event_id="e1")
    redelivered = logged(grant, partition=0, offset=4)
    reused = logged(opted_out(event_id="e1"), partition=2, offset=9)
    recorded = {"e1": Recorded(grant, clamped=False, partition=1, offset=3)}

    found = conflicts([redelivered, reused], recorded)

    assert [(c.again, c.first_partition, c.first_offset) for c in found] == [(reused, 1, 3)]


def test_a_record_becomes_a_logged_event_placed_and_clamped_at_its_broker_time() -> None:
    event = granted(occurred_at=at(10))
    record = Record(event.model_dump_json().encode(), int(at(5).timestamp() * 1000))

    result = logged_event(record, TRUST)

    assert not isinstance(result, Rejected)
    assert (result.log_time, result.partition, result.offset) == (at(5), 1, 7)
    assert result.event.occurred_at == at(5)
    assert result.clamped


def test_an_unusable_record_is_rejected() -> None:
    result = logged_event(Record(b'{"type": "Nonsense"}', 0), TRUST)

    assert isinstance(result, Rejected)
    assert result.reason == "unknown_type"


def test_broker_time_is_the_record_timestamp_in_milliseconds() -> None:
    moment = T0 + timedelta(milliseconds=250)

    assert broker_time(Record(None, int(moment.timestamp() * 1000))) == moment
