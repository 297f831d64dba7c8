"""Decide when a windowed message may reach its recipient (clause 6), with no I/O.

An instant is inside a window when the recipient's wall clock then reads a
time inside it: a window starting in a DST gap opens at the jump, and a
repeated hour counts by what the clock shows the second time too."""

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA

from shared.contract.purposes import OPT_OUT_CONFIRMATION, Purpose
from shared.identifiers import is_bsuid

# Messages the person is waiting for go at any hour.
EXEMPT_PURPOSES: Final = frozenset[str](
    {Purpose.REGISTRATION_CONFIRMATION, Purpose.INQUIRY_RESPONSE, Purpose.CUSTOMER_SUPPORT}
) | {OPT_OUT_CONFIRMATION}
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A week and a day: every weekday's window comes round, so zones sharing no
# instant within it share none (until a DST change, too far to wait for).
HORIZON: Final = timedelta(days=8)
# No zone moves its offset and back within 3 h: sampling so finds every change.
_SAMPLE: Final = timedelta(hours=3)
_ENTRY = re.compile(r"(?:(\w+)(?:-(\w+))?\s+)?(?:(closed)|(\d\d?):(\d\d)\s*-\s*(\d\d?):(\d\d))")


@dataclass(frozen=True, slots=True)
class Span:
    """Hold a day's window in wall time; an end ≤ start is next day's: 00:00-00:00 is 24 h."""

    start: time
    end: time

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """Return the naive local start and end of this span when it opens on `day`."""
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        return datetime.combine(day, self.start), datetime.combine(end_day, self.end)


@dataclass(frozen=True, slots=True)
class Window:
    """Give each weekday (Monday first; the day a span opens) a span, or None for closed."""

    days: tuple[Span | None, ...]

    def __post_init__(self) -> None:
        if len(self.days) != len(DAYS) or all(span is None for span in self.days):
            raise ValueError("a window needs 7 spans, at least one of them open")

    @classmethod
    def parse(cls, text: str) -> "Window":
        """Read "09:00-20:00", "Mon-Sat 09:00-21:00; Sun 12:00-21:00" or "...; Sun closed".

        No days means all; later entries override earlier ones; 24:00 is midnight."""
        days: dict[int, Span | None] = {}
        for entry in re.split(r"[;,]", text):
            if (match := _ENTRY.fullmatch(entry.strip())) is None:
                raise ValueError(f"window {text!r}: {entry!r} is not [Mon[-Sat]] HH:MM-HH:MM")
            first, last, closed, *hours = match.groups()
            span = None if closed else _span(text, *(int(h) for h in hours))
            for day in _day_range(first or "mon", last or first or "sun", text):
                days[day] = span
        if missing := [DAYS[d].title() for d in range(len(DAYS)) if d not in days]:
            raise ValueError(f"window {text!r} says nothing for {', '.join(missing)}")
        return cls(tuple(days[d] for d in range(len(DAYS))))

    def contains(self, instant: datetime, zone: ZoneInfo) -> bool:
        """Tell whether the wall clock in `zone` reads a time inside this window."""
        wall = instant.astimezone(zone).replace(tzinfo=None)
        for day in (wall.date() - timedelta(days=1), wall.date()):
            span = self.days[day.weekday()]
            if span is not None and span.bounds(day)[0] <= wall < span.bounds(day)[1]:
                return True
        return False


def _span(text: str, h1: int, m1: int, h2: int, m2: int) -> Span:
    try:
        return Span(time(h1, m1), time(0, 0) if (h2, m2) == (24, 0) else time(h2, m2))
    except ValueError as exc:
        raise ValueError(f"window {text!r}: {exc}") from exc


def _day_range(first: str, last: str, text: str) -> list[int]:
    if first.lower() not in DAYS or last.lower() not in DAYS:
        raise ValueError(f"window {text!r}: days run Mon..Sun, got {first}-{last}")
    start, stop = DAYS.index(first.lower()), DAYS.index(last.lower())
    return [(start + i) % len(DAYS) for i in range((stop - start) % len(DAYS) + 1)]


# Strictest of FCC 8:00-21:00, Florida 8:00-20:00, Texas 9:00 (Sun 12:00)-21:00.
DEFAULT_WINDOW: Final = Window.parse("09:00-20:00")


@dataclass(frozen=True, slots=True)
class QuietHoursPolicy:
    """Say which window applies to a recipient's region and which purposes skip it."""

    default: Window = DEFAULT_WINDOW
    regions: Mapping[str, Window] = field(default_factory=dict)
    exempt: frozenset[str] = EXEMPT_PURPOSES

    def window_for(self, region: str | None) -> Window:
        """Return the region's window, or the default one."""
        return self.regions.get((region or "").upper(), self.default)

    @classmethod
    def from_settings(cls, windows: Mapping[str, str]) -> "QuietHoursPolicy":
        """Build a policy from `{"default": "09:00-20:00", "US": "08:00-21:00", ...}`."""
        parsed = {key.strip().upper(): Window.parse(text) for key, text in windows.items()}
        for key in parsed.keys() - phonenumbers.SUPPORTED_REGIONS - {"DEFAULT"}:
            raise ValueError(f"quiet hours key {key!r} is neither 'default' nor a region code")
        default = parsed.pop("DEFAULT", DEFAULT_WINDOW)
        return cls(default=default, regions=parsed)


def recipient_zones(phone: str | None, explicit_timezone: str | None) -> tuple[ZoneInfo, ...]:
    """Return the zones the recipient may be in: the explicit one, else the number's."""
    if explicit_timezone is not None:
        return (_zone(explicit_timezone),)
    names: tuple[str, ...] = ()
    if phone is not None and is_bsuid(phone):
        # A user id names the country only: all the zones of its calling code, as
        # for a number whose zone is unknown.
        code = phonenumbers.country_code_for_region(phone.split(".", 1)[0])
        names = TIMEZONE_DATA.get(str(code), ()) if code else ()
    elif phone is not None:
        try:
            number = phonenumbers.parse(phone if phone.startswith("+") else "+" + phone)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"cannot read the recipient's number: {exc}") from exc
        names = time_zones_for_number(number)
        if names == (UNKNOWN_TIMEZONE,):
            # The whole country's zones, intersected, still keep the message out
            # of that country's night, which UTC or one guessed zone may not.
            names = TIMEZONE_DATA.get(str(number.country_code), ())
    zones: list[ZoneInfo] = []
    for name in dict.fromkeys(names):
        # A zone the local tzdata lacks must not make the recipient unreachable.
        with suppress(ValueError):
            zones.append(_zone(name))
    # Nothing known (no number, +800/+882): UTC, the one zone every reader can
    # predict; a wrong guess of a country would look deliberate.
    return tuple(zones) or (ZoneInfo("UTC"),)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name") from exc


def next_opening(window: Window, zones: Sequence[ZoneInfo], now: datetime) -> datetime | None:
    """Return the earliest UTC instant ≥ now inside the window in every zone, None if now.

    Zones too far apart to share an instant (a +1 toll-free number spans Guam
    to Pago Pago) get the earliest instant inside the most windows: holding a
    message for an opening that never comes would drop it just as surely."""
    _require_aware(now, "now")
    if not zones:
        raise ValueError("a recipient needs at least one time zone")
    start = now.astimezone(UTC)
    inside_now = [False] * len(zones)
    best, best_at = -1, start
    # Outs sort before ins at one instant: no partial count overstates it.
    tracks = [membership(window, zone, start) for zone in zones]
    for at, inside, i in sorted((at, inside, i) for i, t in enumerate(tracks) for at, inside in t):
        inside_now[i] = inside
        if sum(inside_now) > best:
            best, best_at = sum(inside_now), at
    return None if best_at == start else best_at


def membership(window: Window, zone: ZoneInfo, start: datetime) -> list[tuple[datetime, bool]]:
    """Return where the zone's clock enters or leaves the window within HORIZON of start."""
    # Membership changes only where the clock reaches a bound (either reading
    # of a repeated one: fold 0, 1) or jumps, so it is constant between points.
    end = start + HORIZON
    points = {start, *_transitions(zone, start, end)}
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        span = window.days[day.weekday()]
        for wall in span.bounds(day) if span is not None else ():
            for fold in (0, 1):
                at = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if start < at <= end:
                    points.add(at)
        day += timedelta(days=1)
    return [(at, window.contains(at, zone)) for at in sorted(points)]


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    lo = start
    while lo < end:
        hi = min(lo + _SAMPLE, end)
        if offset(lo) != offset(hi):
            low, high = lo, hi
            while high - low > timedelta(microseconds=1):
                mid = low + (high - low) / 2
                low, high = (low, mid) if offset(mid) != offset(low) else (mid, high)
            yield high  # the first microsecond on the new offset
        lo = hi


class Timing(StrEnum):
    """Name what quiet hours make of a request; TOO_LATE is dropped, never sent late."""

    SEND_NOW = "send_now"
    DEFER = "defer"
    TOO_LATE = "too_late"


class TimingVerdict(NamedTuple):
    """Carry the timing and the window's next opening, None while it is open."""

    timing: Timing
    not_before: datetime | None = None


def decide_timing(
    policy: QuietHoursPolicy,
    purpose: str,
    zones: Sequence[ZoneInfo],
    region: str | None,
    now: datetime,
    deliver_by: datetime | None = None,
    opening_of: Callable[[Window, Sequence[ZoneInfo], datetime], datetime | None] = next_opening,
) -> TimingVerdict:
    """Decide whether a request goes now, waits for the window, or would arrive too late.

    `opening_of` computes the window's next opening (a cached equivalent may stand in)."""
    _require_aware(now, "now")
    exempt = purpose in policy.exempt
    opening = None if exempt else opening_of(policy.window_for(region), zones, now)
    if deliver_by is not None:
        _require_aware(deliver_by, "deliver_by")
        # Never sent late, whatever the purpose: a past deadline drops even "send now".
        if (opening or now) > deliver_by:
            return TimingVerdict(Timing.TOO_LATE, opening)
    return TimingVerdict(Timing.SEND_NOW if opening is None else Timing.DEFER, opening)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
