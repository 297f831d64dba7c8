"""Check when a windowed message may go, given the recipient's zones and the
clock: examples across zones and DST days, then properties checked against a
brute-force reading of the recipient's wall clock."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.dispatch.quiet_hours import (
    DEFAULT_WINDOW,
    EXEMPT_PURPOSES,
    QuietHoursPolicy,
    Span,
    Timing,
    Window,
    decide_timing,
    next_opening,
    recipient_zones,
)

REMINDER = Purpose.EVENT_REMINDER
POLICY = QuietHoursPolicy()
TEXAS = Window.parse("Mon-Sat 09:00-21:00; Sun 12:00-21:00")


def zones(*names: str) -> tuple[ZoneInfo, ...]:
    return tuple(ZoneInfo(name) for name in names)


def local(name: str, *fields: int, fold: int = 0) -> datetime:
    """Return the instant the wall clock of zone `name` shows as `fields`, in UTC.

    In UTC because Python never calls an ambiguous time equal to one of another zone."""
    return datetime(*fields, tzinfo=ZoneInfo(name), fold=fold).astimezone(UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def opening(
    names: tuple[str, ...], now: datetime, window: Window = DEFAULT_WINDOW
) -> datetime | None:
    return next_opening(window, zones(*names), now)


# ------------------------------------------------------------ one zone


def test_reminder_before_nine_in_new_york_waits_until_nine_local() -> None:
    assert opening(("America/New_York",), local("America/New_York", 2026, 5, 4, 7, 30)) == (
        local("America/New_York", 2026, 5, 4, 9)
    )


def test_reminder_inside_the_window_in_los_angeles_goes_now() -> None:
    assert (
        opening(("America/Los_Angeles",), local("America/Los_Angeles", 2026, 5, 4, 19, 59)) is None
    )


def test_window_closes_at_its_end_and_reopens_next_morning() -> None:
    now = local("America/Los_Angeles", 2026, 5, 4, 20, 0)

    assert opening(("America/Los_Angeles",), now) == local("America/Los_Angeles", 2026, 5, 5, 9)


def test_moscow_evening_reminder_waits_for_moscow_morning() -> None:
    assert opening(("Europe/Moscow",), local("Europe/Moscow", 2026, 11, 27, 21)) == utc(
        2026, 11, 28, 6
    )


def test_the_opening_is_returned_in_utc() -> None:
    result = opening(("Europe/Moscow",), utc(2026, 11, 27, 2))

    assert result is not None and result.utcoffset() == timedelta(0)


# ------------------------------------------------------------ DST days


def test_berlin_spring_forward_morning_opens_at_nine_summer_time() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    assert opening(("Europe/Berlin",), utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 7)


def test_berlin_autumn_morning_opens_at_nine_winter_time() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET.
    assert opening(("Europe/Berlin",), utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 8)


def test_window_starting_in_the_spring_forward_gap_opens_at_the_jump() -> None:
    window = Window.parse("02:30-06:00")

    # 02:30 never shows on Berlin clocks that night: the first reading after it is 03:00 CEST.
    assert opening(("Europe/Berlin",), utc(2026, 3, 29, 0), window) == utc(2026, 3, 29, 1)


def test_repeated_hour_counts_by_what_the_clock_shows() -> None:
    window = Window.parse("02:30-06:00")
    second_two_o_five = local("Europe/Berlin", 2026, 10, 25, 2, 5, fold=1)

    assert opening(("Europe/Berlin",), utc(2026, 10, 25, 0), window) == utc(2026, 10, 25, 0, 30)
    assert opening(("Europe/Berlin",), second_two_o_five, window) == local(
        "Europe/Berlin", 2026, 10, 25, 2, 30, fold=1
    )


def test_falling_back_into_a_window_reopens_it_at_the_jump() -> None:
    window = Window.parse("22:00-02:30")
    after_first_half_past_two = local("Europe/Berlin", 2026, 10, 25, 2, 40)

    # At 01:00 UTC the clock goes back from 03:00 to 02:00, inside the window again.
    assert opening(("Europe/Berlin",), after_first_half_past_two, window) == utc(2026, 10, 25, 1)


def test_lord_howe_half_hour_jump_opens_a_window_starting_in_its_gap() -> None:
    # 2026-10-04: Lord Howe's clocks go from 02:00 (+10:30) to 02:30 (+11).
    window = Window.parse("02:15-05:00")
    now = local("Australia/Lord_Howe", 2026, 10, 4, 1, 30)

    result = opening(("Australia/Lord_Howe",), now, window)

    assert result == utc(2026, 10, 3, 15, 30)
    assert result is not None
    assert result.astimezone(ZoneInfo("Australia/Lord_Howe")).time() == time(2, 30)


def test_lord_howe_window_closing_in_the_repeated_half_hour_reopens_when_it_repeats() -> None:
    # 2026-04-05: clocks go from 02:00 (+11) back to 01:30 (+10:30).
    window = Window.parse("22:00-01:45")

    assert opening(("Australia/Lord_Howe",), utc(2026, 4, 4, 14, 50), window) == utc(2026, 4, 4, 15)


# ------------------------------------------------------------ windows and days


def test_window_spanning_midnight_opens_in_the_evening() -> None:
    night = Window.parse("22:00-06:00")

    assert opening(("Europe/Berlin",), local("Europe/Berlin", 2026, 6, 1, 21), night) == (
        local("Europe/Berlin", 2026, 6, 1, 22)
    )
    assert opening(("Europe/Berlin",), local("Europe/Berlin", 2026, 6, 2, 2), night) is None
    assert opening(("Europe/Berlin",), local("Europe/Berlin", 2026, 6, 2, 6), night) == (
        local("Europe/Berlin", 2026, 6, 2, 22)
    )


def test_a_span_belongs_to_the_day_it_opens() -> None:
    friday_night_only = Window.parse("Fri 22:00-02:00; Sat-Thu closed")

    saturday_one_am = local("Europe/Berlin", 2026, 6, 6, 1)
    assert opening(("Europe/Berlin",), saturday_one_am, friday_night_only) is None
    assert opening(
        ("Europe/Berlin",), local("Europe/Berlin", 2026, 6, 6, 2), friday_night_only
    ) == (local("Europe/Berlin", 2026, 6, 12, 22))


def test_texas_sunday_reminder_waits_until_noon() -> None:
    sunday_ten = local("America/Chicago", 2026, 6, 7, 10)

    assert opening(("America/Chicago",), sunday_ten, TEXAS) == local(
        "America/Chicago", 2026, 6, 7, 12
    )


def test_texas_saturday_late_reminder_waits_for_sunday_noon() -> None:
    saturday_late = local("America/Chicago", 2026, 6, 6, 21, 30)

    assert opening(("America/Chicago",), saturday_late, TEXAS) == local(
        "America/Chicago", 2026, 6, 7, 12
    )


def test_closed_sunday_sends_a_saturday_late_reminder_on_monday() -> None:
    window = Window.parse("09:00-21:00; Sun closed")
    saturday_late = local("America/Chicago", 2026, 6, 6, 21, 30)

    assert opening(("America/Chicago",), saturday_late, window) == local(
        "America/Chicago", 2026, 6, 8, 9
    )


# ------------------------------------------------------------ several zones


def test_idaho_number_spanning_two_zones_waits_for_both() -> None:
    both = recipient_zones("+12082001234", None)
    nine_thirty_in_boise = utc(2026, 6, 1, 15, 30)  # 08:30 in Los Angeles

    assert both == zones("America/Boise", "America/Los_Angeles")
    assert next_opening(DEFAULT_WINDOW, both, nine_thirty_in_boise) == utc(2026, 6, 1, 16)


def test_zones_with_no_common_instant_get_the_earliest_instant_inside_most_windows() -> None:
    # Honolulu's 09:00-20:00 shares no instant with Moscow's; Berlin's shares one with Moscow's.
    names = ("Europe/Moscow", "Europe/Berlin", "Pacific/Honolulu")

    assert opening(names, utc(2026, 6, 1, 3)) == utc(2026, 6, 1, 7)
    assert opening(names, utc(2026, 6, 1, 10)) is None


def test_toll_free_number_spanning_guam_to_samoa_still_gets_an_opening() -> None:
    everywhere = recipient_zones("+18005551234", None)

    result = next_opening(DEFAULT_WINDOW, everywhere, utc(2026, 6, 1, 3))

    assert len(everywhere) > 30
    assert result is not None and result - utc(2026, 6, 1, 3) < timedelta(days=1)


# ------------------------------------------------------------ purposes and deadlines


@pytest.mark.parametrize("purpose", sorted(EXEMPT_PURPOSES))
def test_messages_the_person_waits_for_go_at_any_hour(purpose: str) -> None:
    three_am = local("America/New_York", 2026, 6, 1, 3)

    verdict = decide_timing(POLICY, purpose, zones("America/New_York"), "US", three_am)

    assert verdict.timing is Timing.SEND_NOW


def test_exempt_set_is_the_three_purposes_and_the_opt_out_confirmation() -> None:
    assert {
        Purpose.REGISTRATION_CONFIRMATION,
        Purpose.INQUIRY_RESPONSE,
        Purpose.CUSTOMER_SUPPORT,
        OPT_OUT_CONFIRMATION,
    } == EXEMPT_PURPOSES


@pytest.mark.parametrize("purpose", [Purpose.EVENT_REMINDER, Purpose.EDUCATIONAL_MATERIAL])
def test_reminders_and_material_at_night_are_deferred_to_the_opening(purpose: str) -> None:
    night = local("America/New_York", 2026, 6, 1, 22)

    verdict = decide_timing(POLICY, purpose, zones("America/New_York"), "US", night)

    assert verdict.timing is Timing.DEFER
    assert verdict.not_before == local("America/New_York", 2026, 6, 2, 9)


def test_reminder_whose_window_opens_after_deliver_by_is_too_late() -> None:
    night = local("America/New_York", 2026, 6, 1, 22)
    deliver_by = local("America/New_York", 2026, 6, 2, 8)

    verdict = decide_timing(POLICY, REMINDER, zones("America/New_York"), "US", night, deliver_by)

    assert verdict.timing is Timing.TOO_LATE
    assert verdict.not_before == local("America/New_York", 2026, 6, 2, 9)


def test_reminder_whose_window_opens_exactly_at_deliver_by_is_deferred() -> None:
    night = local("America/New_York", 2026, 6, 1, 22)
    deliver_by = local("America/New_York", 2026, 6, 2, 9)

    verdict = decide_timing(POLICY, REMINDER, zones("America/New_York"), "US", night, deliver_by)

    assert verdict.timing is Timing.DEFER


def test_a_past_deadline_is_too_late_even_inside_the_window() -> None:
    noon = local("America/New_York", 2026, 6, 1, 12)

    verdict = decide_timing(
        POLICY, REMINDER, zones("America/New_York"), "US", noon, noon - timedelta(minutes=1)
    )

    assert verdict == (Timing.TOO_LATE, None)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_timing(POLICY, REMINDER, zones("UTC"), None, datetime(2026, 6, 1, 12))


# ------------------------------------------------------------ recipient zones


def test_zone_comes_from_the_number() -> None:
    assert recipient_zones("+12125551234", None) == zones("America/New_York")
    assert recipient_zones("4930123456", None) == zones("Europe/Berlin")


def test_explicit_timezone_wins_over_the_number() -> None:
    assert recipient_zones("+12125551234", "Europe/Moscow") == zones("Europe/Moscow")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Etc/Unknown", "", "../../etc/passwd"])
def test_unknown_explicit_timezone_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        recipient_zones("+12125551234", name)


def test_number_without_zone_data_gets_its_countrys_zones() -> None:
    nanp = recipient_zones("+15551234567", None)  # 555: no area, still +1

    assert ZoneInfo("America/New_York") in nanp and ZoneInfo("Pacific/Honolulu") in nanp


def test_number_of_no_country_falls_back_to_utc() -> None:
    assert recipient_zones("+882345678901", None) == zones("UTC")
    assert recipient_zones(None, None) == zones("UTC")


# ------------------------------------------------------------ settings


def test_policy_from_settings_applies_region_windows() -> None:
    policy = QuietHoursPolicy.from_settings({"default": "10:00-19:00", "us": "08:00-21:00"})
    eight_thirty = local("America/New_York", 2026, 6, 1, 8, 30)
    new_york = zones("America/New_York")

    assert decide_timing(policy, REMINDER, new_york, "US", eight_thirty).timing is Timing.SEND_NOW
    assert decide_timing(policy, REMINDER, new_york, None, eight_thirty).not_before == (
        local("America/New_York", 2026, 6, 1, 10)
    )


def test_default_window_is_nine_to_eight_every_day() -> None:
    assert Window.parse("09:00-20:00") == DEFAULT_WINDOW == POLICY.default
    assert set(DEFAULT_WINDOW.days) == {Span(time(9), time(20))}


def test_midnight_end_and_whole_day_spans_parse() -> None:
    assert Window.parse("18:00-24:00").days[0] == Span(time(18), time(0))
    assert opening(("UTC",), utc(2026, 6, 1, 3), Window.parse("00:00-00:00")) is None


@pytest.mark.parametrize(
    ("settings_value", "message"),
    [
        ({"default": "9-20"}, "is not"),
        ({"default": "25:00-20:00"}, "hour must be"),
        ({"default": "Mon-Fri 09:00-20:00"}, "says nothing for Sat, Sun"),
        ({"default": "Mon-Xyz 09:00-20:00"}, "days run Mon..Sun"),
        ({"default": "closed"}, "at least one of them open"),
        ({"XX": "09:00-20:00"}, "neither 'default' nor a region code"),
    ],
)
def test_bad_settings_are_clear_errors(settings_value: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuietHoursPolicy.from_settings(settings_value)


# ------------------------------------------------------------ properties

# A DST change and the zone it happens in: scenarios start around it.
DST_CHANGES = [
    (utc(2026, 3, 8, 7), "America/New_York"),  # springs forward at 02:00
    (utc(2026, 11, 1, 6), "America/New_York"),  # falls back at 02:00
    (utc(2026, 3, 29, 1), "Europe/Berlin"),  # springs forward at 02:00
    (utc(2026, 10, 25, 1), "Europe/Berlin"),  # falls back at 03:00
    (utc(2026, 4, 4, 15), "Australia/Lord_Howe"),  # falls back half an hour at 02:00
    (utc(2026, 10, 3, 15, 30), "Australia/Lord_Howe"),  # springs forward half an hour at 02:00
    (utc(2026, 4, 5, 3), "America/Santiago"),  # falls back at midnight
    (utc(2026, 9, 6, 4), "America/Santiago"),  # springs forward at midnight
]
ZONE_POOL = [
    "America/New_York",
    "America/Los_Angeles",
    "America/Santiago",
    "America/St_Johns",
    "Europe/Berlin",
    "Europe/Moscow",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Honolulu",
]
# Bounds on and around the hours clocks jump at, so that spans start and end in gaps and repeats.
BOUNDS = [
    *(time(0), time(0, 30), time(1, 45), time(2), time(2, 15), time(2, 30), time(3)),
    *(time(9), time(23, 30)),
]
SPAN_CHECKED = timedelta(hours=26)


def windows(clock_times: st.SearchStrategy[time]) -> st.SearchStrategy[Window]:
    spans = st.builds(Span, clock_times, clock_times)
    return st.one_of(
        st.builds(lambda span: Window((span,) * 7), spans),
        st.lists(st.none() | spans, min_size=7, max_size=7)
        .filter(lambda days: any(days))
        .map(lambda days: Window(tuple(days))),
    )


any_minute = st.times().map(lambda t: t.replace(second=0, microsecond=0))
zones_drawn = st.sampled_from(ZONE_POOL).map(ZoneInfo) | st.timezones()
instants = st.datetimes(datetime(2000, 1, 1), datetime(2036, 12, 31), timezones=st.just(UTC))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Window, list[ZoneInfo], datetime]:
    """Draw a window, one to three zones and a clock, half the time around a DST change."""
    others = draw(st.lists(zones_drawn, max_size=2, unique=True))
    if draw(st.booleans()):
        change, name = draw(st.sampled_from(DST_CHANGES))
        minutes = draw(st.integers(-24 * 60, 6 * 60) | st.integers(-120, 120))
        now = change + timedelta(minutes=minutes)
        window = draw(windows(st.sampled_from(BOUNDS)))
        return window, list(dict.fromkeys([ZoneInfo(name), *others])), now
    window = draw(windows(st.sampled_from(BOUNDS) | any_minute))
    return window, list(dict.fromkeys([draw(zones_drawn), *others])), draw(instants)


def wall_clock_inside(window: Window, zone: ZoneInfo, instant: datetime) -> bool:
    """Read the wall clock as a person would: today's span, or last night's running on."""
    wall = instant.astimezone(zone)
    clock = wall.time()
    today, yesterday = window.days[wall.weekday()], window.days[wall.weekday() - 1]
    if (
        today is not None
        and today.start <= clock
        and (today.end <= today.start or clock < today.end)
    ):
        return True
    return yesterday is not None and yesterday.end <= yesterday.start and clock < yesterday.end


def coverage(window: Window, zone_set: list[ZoneInfo], instant: datetime) -> int:
    return sum(wall_clock_inside(window, zone, instant) for zone in zone_set)


@settings(max_examples=80, deadline=None)
@given(scenarios())
def test_opening_is_the_first_instant_inside_the_most_windows(
    scenario: tuple[Window, list[ZoneInfo], datetime],
) -> None:
    window, zone_set, now = scenario
    result = next_opening(window, zone_set, now)
    at = now if result is None else result
    best = coverage(window, zone_set, at)

    assert at >= now
    if result is not None:
        assert coverage(window, zone_set, result - timedelta(microseconds=1)) < best
    for minute in range(int(SPAN_CHECKED / timedelta(minutes=1))):
        instant = now + timedelta(minutes=minute)
        covered = coverage(window, zone_set, instant)
        assert covered < best if instant < at else covered <= best


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_an_opening_shared_by_every_zone_is_inside_every_window(
    scenario: tuple[Window, list[ZoneInfo], datetime],
) -> None:
    window, zone_set, now = scenario
    shared = any(
        coverage(window, zone_set, now + timedelta(minutes=15 * k)) == len(zone_set)
        for k in range(4 * 24 * 2)
    )
    result = next_opening(window, zone_set, now)

    if shared:
        at = now if result is None else result
        assert all(wall_clock_inside(window, zone, at) for zone in zone_set)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(EXEMPT_PURPOSES)), scenarios())
def test_an_exempt_purpose_is_never_deferred(
    purpose: str, scenario: tuple[Window, list[ZoneInfo], datetime]
) -> None:
    window, zone_set, now = scenario

    verdict = decide_timing(QuietHoursPolicy(default=window), purpose, zone_set, None, now)

    assert verdict.timing is Timing.SEND_NOW


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.integers(-24 * 60, 48 * 60))
def test_too_late_exactly_when_the_opening_is_past_deliver_by(
    scenario: tuple[Window, list[ZoneInfo], datetime], minutes: int
) -> None:
    window, zone_set, now = scenario
    policy, deliver_by = QuietHoursPolicy(default=window), now + timedelta(minutes=minutes)
    opening_at = next_opening(window, zone_set, now) or now

    verdict = decide_timing(policy, REMINDER, zone_set, None, now, deliver_by)

    assert (verdict.timing is Timing.TOO_LATE) == (opening_at > deliver_by)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(DST_CHANGES),
    st.integers(-180, 90) | st.integers(0, 60),
    windows(st.sampled_from(BOUNDS)),
)
def test_around_a_dst_change_the_opening_is_the_first_minute_the_clock_allows(
    change: tuple[datetime, str], minutes: int, window: Window
) -> None:
    at_change, name = change
    zone, now = ZoneInfo(name), at_change + timedelta(minutes=minutes)
    result = next_opening(window, [zone], now)
    at = now if result is None else result

    assert wall_clock_inside(window, zone, at)
    if result is not None:
        assert not wall_clock_inside(window, zone, result - timedelta(microseconds=1))
    for minute in range(6 * 60):
        instant = now + timedelta(minutes=minute)
        assert instant >= at or not wall_clock_inside(window, zone, instant)
