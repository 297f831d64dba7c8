"""In ERASURE_MODE=on the dispatcher refuses a horizon that keeps recipients and
bodies in clear past an erasure's deadline: its decisions hold them until their day
partition is dropped, up to a day after DISPATCHER_HORIZON_DAYS."""

import pytest
from pydantic import ValidationError

from services.dispatcher.settings import DispatcherSettings
from shared.erasure.mode import ErasureMode


@pytest.fixture(autouse=True)
def no_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ERASURE_MODE", "DISPATCHER_HORIZON_DAYS", "DISPATCHER_FREQUENCY_WINDOW_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_the_mode_is_off_by_default() -> None:
    assert DispatcherSettings().erasure_mode is ErasureMode.OFF


@pytest.mark.parametrize("days", ["29", "60"])
def test_in_erasure_mode_a_horizon_past_28_days_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("ERASURE_MODE", "on")
    monkeypatch.setenv("DISPATCHER_HORIZON_DAYS", days)

    with pytest.raises(ValidationError) as refused:
        DispatcherSettings()

    message = str(refused.value)
    assert f"DISPATCHER_HORIZON_DAYS={days} keeps recipients and message bodies" in message
    assert "ERASURE_MODE=on allows: at most 28 (ERASURE_DEADLINE_DAYS=30" in message


@pytest.mark.parametrize("days", ["1", "7", "28"])
def test_in_erasure_mode_a_horizon_up_to_28_days_starts(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    monkeypatch.setenv("ERASURE_MODE", "on")
    monkeypatch.setenv("DISPATCHER_HORIZON_DAYS", days)

    settings = DispatcherSettings()

    assert (settings.erasure_mode, settings.horizon_days) == (ErasureMode.ON, int(days))


def test_without_erasure_mode_a_long_horizon_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERASURE_MODE", "off")
    monkeypatch.setenv("DISPATCHER_HORIZON_DAYS", "60")

    assert DispatcherSettings().horizon_days == 60


def test_an_unknown_mode_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERASURE_MODE", "yes")

    with pytest.raises(ValidationError) as refused:
        DispatcherSettings()

    assert "ERASURE_MODE must be 'off' (the default) or 'on', not 'yes'" in str(refused.value)
