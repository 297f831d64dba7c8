"""ERASURE_MODE=on on the real broker: provisioning, run as `make up` runs it, bounds
the retention of every topic holding personal data in clear, an existing event log's
included, and leaves the ledgers never trimmed; the start check reads what the broker
applies, accepting those topics and refusing one that keeps records for ever or past
the deadline. On topics of the test's own (KAFKA_TOPIC_PREFIX), deleted after."""

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.erasure.mode import BOUNDED_RETENTION_DAYS, UnboundedRetentionError
from shared.kafka.topic_retention import configs_in_force, require_bounded_retention
from shared.kafka.topic_specs import DLQ_MAX_MESSAGE_BYTES
from shared.topics import CONSENT_EVENTS, CONSUMED, LEDGERS, dlq
from tests.support.kafka import private_topics
from tests.support.prefixed_topics import deleted_after, ours, provision
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
READ = (
    "retention.ms",
    "segment.ms",
    "retention.bytes",
    "message.timestamp.type",
    "message.timestamp.after.max.ms",
    "max.message.bytes",
)


@pytest.fixture
async def prefix(stack: Stack) -> AsyncIterator[str]:
    async with deleted_after(stack, f"test.erasure.{uuid.uuid4().hex[:8]}.") as prefix:
        yield prefix


@pytest.fixture
async def turned_on(stack: Stack, prefix: str) -> str:
    """A deployment provisioned under the contract, then with ERASURE_MODE=on; returns
    what the second provisioning said."""
    await provision(stack, prefix, "off")
    return await provision(stack, prefix, "on")


async def test_erasure_mode_bounds_every_topic_in_clear_and_never_the_ledgers(
    stack: Stack, prefix: str, turned_on: str
) -> None:
    bounded = {ours(prefix, t): days for t, days in BOUNDED_RETENTION_DAYS.items()}
    ledgers = [ours(prefix, t) for t in LEDGERS]

    found = await configs_in_force(stack.kafka_bootstrap, [*bounded, *ledgers], READ)

    assert {t: found[t]["retention.ms"] for t in bounded} == {
        t: str(days * DAY_MS) for t, days in bounded.items()
    }
    assert {found[t]["segment.ms"] for t in bounded} == {str(DAY_MS)}
    assert {found[t]["message.timestamp.after.max.ms"] for t in bounded} == {"3600000"}
    assert {found[t]["retention.ms"] for t in ledgers} == {"-1"}
    # The event log keeps its other configs; the DLQs their size.
    events = found[ours(prefix, CONSENT_EVENTS)]
    assert (events["message.timestamp.type"], events["retention.bytes"]) == ("LogAppendTime", "-1")
    assert {found[ours(prefix, dlq(t))]["max.message.bytes"] for t in CONSUMED} == {
        str(DLQ_MAX_MESSAGE_BYTES)
    }
    assert f"{ours(prefix, CONSENT_EVENTS)}: setting retention.ms={21 * DAY_MS} (was -1)" in (
        turned_on
    )


async def test_the_start_check_accepts_the_provisioned_topics_and_refuses_unbounded_ones(
    stack: Stack, prefix: str, turned_on: str
) -> None:
    bounded = [ours(prefix, t) for t in BOUNDED_RETENTION_DAYS]
    ledger = ours(prefix, LEDGERS[0])
    # A month's retention.ms alone looks bounded; the brokers' default segment.ms
    # (a week) keeps its records five weeks.
    month = f"{prefix}a.month"

    await require_bounded_retention(stack.kafka_bootstrap, bounded)

    async with private_topics(stack.kafka_bootstrap, {month: {"retention.ms": str(28 * DAY_MS)}}):
        with pytest.raises(UnboundedRetentionError) as refused:
            await require_bounded_retention(stack.kafka_bootstrap, [*bounded, ledger, month])

    message = str(refused.value)
    assert f"{ledger} keeps its records for ever (retention.ms=-1)" in message
    assert (
        f"{month} has retention.ms=2419200000 ms (28 days) + segment.ms=604800000 ms (7 days)"
    ) in message
    assert not [t for t in bounded if f"{t} " in message]


async def test_turned_off_the_event_log_is_never_trimmed_again_and_the_check_says_so(
    stack: Stack, prefix: str, turned_on: str
) -> None:
    events = ours(prefix, CONSENT_EVENTS)

    await provision(stack, prefix, "off")

    found = await configs_in_force(stack.kafka_bootstrap, [events], READ)
    assert found[events]["retention.ms"] == "-1"
    with pytest.raises(UnboundedRetentionError, match="keeps its records for ever"):
        await require_bounded_retention(
            stack.kafka_bootstrap, [ours(prefix, t) for t in BOUNDED_RETENTION_DAYS]
        )
