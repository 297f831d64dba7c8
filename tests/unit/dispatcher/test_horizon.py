"""The retention horizon: a request_id is remembered at least as long as any topic the
gate reads can redeliver it, and as long as the frequency window counts it."""

from collections.abc import Sequence
from datetime import timedelta

import pytest
import structlog
from pydantic import ValidationError

from services.dispatcher.retention import topics
from services.dispatcher.retention.horizon import (
    HorizonTooShortError,
    retention_refusal,
    window_refusal,
)
from services.dispatcher.retention.maintenance import PartitionChange, by_action
from services.dispatcher.settings import DispatcherSettings
from shared.kafka.topic_retention import TopicConfigNotAuthorizedError

DAY_MS = 86_400_000
REQUESTS = "messages.requests.v1"
DEFERRED = "messages.deferred.v1"


@pytest.mark.parametrize(
    ("horizon_days", "retentions"),
    [
        pytest.param(7, {REQUESTS: 7 * DAY_MS}, id="the-brokers-default-week-is-covered"),
        pytest.param(7, {REQUESTS: 3 * DAY_MS, DEFERRED: 7 * DAY_MS}, id="shorter-topics"),
        pytest.param(1, {REQUESTS: 3_600_000}, id="an-hour-within-a-day"),
        pytest.param(30, {REQUESTS: 30 * DAY_MS}, id="a-longer-horizon-for-a-longer-topic"),
    ],
)
def test_a_horizon_as_long_as_every_retention_is_accepted(
    horizon_days: int, retentions: dict[str, int]
) -> None:
    assert retention_refusal(horizon_days, retentions) is None


def test_a_topic_kept_longer_than_the_horizon_is_refused_naming_both_figures() -> None:
    refusal = retention_refusal(7, {REQUESTS: 30 * DAY_MS, DEFERRED: 7 * DAY_MS})

    assert refusal is not None
    assert "DISPATCHER_HORIZON_DAYS=7, 604800000 ms, is shorter" in refusal
    assert f"{REQUESTS} has retention.ms=2592000000 ms (30 days)" in refusal
    assert "DISPATCHER_HORIZON_DAYS to at least 30" in refusal
    assert DEFERRED not in refusal


def test_a_part_of_a_day_beyond_the_horizon_asks_for_the_next_whole_day() -> None:
    refusal = retention_refusal(7, {REQUESTS: 7 * DAY_MS + 1})

    assert refusal is not None
    assert "at least 8" in refusal


def test_a_topic_kept_for_ever_is_refused_whatever_the_horizon() -> None:
    refusal = retention_refusal(3650, {DEFERRED: -1})

    assert refusal is not None
    assert f"{DEFERRED} keeps its records for ever (retention.ms=-1)" in refusal
    assert "bounded retention.ms, at most 315360000000 ms" in refusal


@pytest.mark.parametrize(
    ("window", "horizon_days", "fits"),
    [
        (timedelta(hours=24), 1, True),
        (timedelta(hours=24), 7, True),
        (timedelta(days=7), 7, True),
        (timedelta(hours=25), 1, False),
        (timedelta(days=8), 7, False),
    ],
)
def test_the_frequency_window_must_fit_in_the_horizon(
    window: timedelta, horizon_days: int, fits: bool
) -> None:
    assert (window_refusal(window, horizon_days) is None) is fits


def test_the_default_settings_keep_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPATCHER_HORIZON_DAYS", raising=False)

    assert DispatcherSettings().horizon_days == 7


def test_a_window_longer_than_the_horizon_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCHER_HORIZON_DAYS", "1")
    monkeypatch.setenv("DISPATCHER_FREQUENCY_WINDOW_SECONDS", str(2 * 86_400))

    with pytest.raises(ValidationError, match="longer than DISPATCHER_HORIZON_DAYS=1"):
        DispatcherSettings()


@pytest.mark.parametrize("days", ["0", "-3"])
def test_a_horizon_of_less_than_a_day_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("DISPATCHER_HORIZON_DAYS", days)

    with pytest.raises(ValidationError, match="horizon_days"):
        DispatcherSettings()


def test_a_rounds_changes_are_logged_by_what_was_done() -> None:
    changes = [
        PartitionChange("decisions", "decisions_p20261210", "created"),
        PartitionChange("decisions", "decisions_p20261126", "dropped"),
        PartitionChange("deferred", "deferred_p20261125", "kept"),
        PartitionChange("sends", "sends_p20261126", "dropped"),
    ]

    assert by_action(changes) == {
        "created": ["decisions_p20261210"],
        "dropped": ["decisions_p20261126", "sends_p20261126"],
        "kept": ["deferred_p20261125"],
    }


async def test_a_start_reading_a_months_retention_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def month(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
        return dict.fromkeys(topics, 30 * DAY_MS)

    monkeypatch.setattr(topics, "retention_ms", month)

    with pytest.raises(HorizonTooShortError, match="at least 30"):
        await topics.require_horizon("broker:9092", 7, [REQUESTS])


async def test_a_start_refused_the_topics_configs_goes_on_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secured cluster whose ACLs do not allow DescribeConfigs: the check cannot be
    made, which is no horizon known to be too short."""

    async def refused(bootstrap: str, names: Sequence[str]) -> dict[str, int]:
        raise TopicConfigNotAuthorizedError("TopicAuthorizationFailedError")

    monkeypatch.setattr(topics, "retention_ms", refused)

    with structlog.testing.capture_logs() as logs:
        await topics.require_horizon("broker:9092", 7, [REQUESTS, DEFERRED])

    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert logs[0]["fix"] == f"allow this principal DescribeConfigs on {REQUESTS}, {DEFERRED}"
