"""The cached schedule answers exactly what `next_opening` computes, for any
window, set of zones and moment (hypothesis), and fast."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.dispatch.opening_schedule import cached_next_opening
from shared.dispatch.quiet_hours import Window, next_opening, recipient_zones

ZONES = [
    "UTC",
    "Europe/Moscow",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Lord_Howe",
    "Asia/Kamchatka",
    "Pacific/Honolulu",
    "America/Santiago",
]
WINDOWS = [
    "09:00-20:00",
    "22:00-06:00",
    "00:00-00:00",
    "Mon-Sat 09:00-21:00; Sun 12:00-21:00",
    "08:00-21:00; Sun closed",
    "02:30-03:30",
]

moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    window=st.sampled_from(WINDOWS),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True),
    now=moments,
)
def test_the_schedule_gives_what_next_opening_computes(
    window: str, zones: list[str], now: datetime
) -> None:
    parsed, tzs = Window.parse(window), [ZoneInfo(z) for z in zones]

    assert cached_next_opening(parsed, tzs, now) == next_opening(parsed, tzs, now)


def test_a_russian_mobile_numbers_sixteen_zones_agree_across_a_day() -> None:
    window, zones = Window.parse("09:00-20:00"), recipient_zones("+79161234567", None)
    assert len(zones) > 10
    start = datetime(2026, 12, 3, tzinfo=UTC)
    for minutes in range(0, 24 * 60, 37):
        now = start + timedelta(minutes=minutes)
        assert cached_next_opening(window, zones, now) == next_opening(window, zones, now)
