"""Reads timestamps on the wire: RFC 3339 text with an offset (CONTRACT.md sections 2-3)."""

import functools
import re
import zoneinfo
from datetime import UTC
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
)

from shared.rejection import RejectedError

# RFC 3339 section 5.6 (its "T" may be a space or lowercase, its "Z" lowercase).
# pydantic alone also reads JSON numbers and digit strings as Unix time, minutes
# without seconds, comma fractions and offsets without a colon: none is RFC 3339.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# Only in these years can an offset move the instant out of Python's (and so
# asyncpg's) range: 0001-01-01T00:00:00+01:00 is in year 0 in UTC.
_EDGE_YEARS = ("0001-", "9999-")
_AWARE: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise ValueError(f"not an RFC 3339 timestamp with offset: {value[:40]!r}")
        if value.startswith(_EDGE_YEARS):
            _refuse_outside_utc_range(value)
    elif isinstance(value, int | float):
        raise ValueError("expected an RFC 3339 string with offset, not a number")
    return value  # anything else: pydantic says what is wrong with it


def _refuse_outside_utc_range(text: str) -> None:
    try:
        moment = _AWARE.validate_python(text)
    except ValidationError:
        return  # not a valid date at all: pydantic's own error says so
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside years 1-9999 in UTC") from None


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


@functools.lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    """Tells whether `name` is an IANA time zone this machine's tz database holds."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False  # ZoneInfo would read such a name as a path
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _known_zone_name(value: str) -> str:
    if not known_zone(value):
        raise RejectedError("invalid_timezone", f"{value[:64]!r} is not an IANA time zone name")
    return value


# An IANA time zone name this machine knows (a request's or a grant's `timezone`).
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone_name)]
