"""The poison streak: the loop blames itself after `limit` poison records in a
row, for the cool-down only, and a handled record clears it."""

from aiokafka import TopicPartition

from shared.kafka.log_order import next_offsets
from shared.kafka.poison_streak import PoisonStreak
from tests.support.records import consumer_record as record


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_below_the_limit_the_records_are_blamed() -> None:
    streak = PoisonStreak(limit=3, cooldown=30, clock=_Clock())
    streak.add_poison()
    streak.add_poison()
    assert not streak.blaming_itself()


def test_at_the_limit_the_loop_blames_itself_until_the_cooldown_ends() -> None:
    clock = _Clock()
    streak = PoisonStreak(limit=2, cooldown=30, clock=clock)
    streak.add_poison()
    streak.add_poison()
    assert streak.blaming_itself()
    clock.now += 29.9
    assert streak.blaming_itself()
    clock.now += 0.2
    assert not streak.blaming_itself()
    assert streak.count == 0  # a new streak starts after the cool-down


def test_a_handled_record_clears_the_streak() -> None:
    clock = _Clock()
    streak = PoisonStreak(limit=1, cooldown=30, clock=clock)
    streak.add_poison()
    assert streak.blaming_itself()
    streak.reset()
    assert not streak.blaming_itself()


def test_next_offsets_are_one_past_the_last_record_of_each_partition() -> None:
    records = [record("t", 0, 5), record("t", 1, 2), record("t", 0, 7), record("u", 0, 1)]
    assert next_offsets(records) == {
        TopicPartition("t", 0): 8,
        TopicPartition("t", 1): 3,
        TopicPartition("u", 0): 2,
    }
