"""Timestamps on the wire: RFC 3339 text with an offset (CONTRACT.md sections 2-3)."""

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

# RFC 3339 section 5.6 (its "T" may be a space or lowercase, its "Z" lowercase).
# pydantic alone also reads JSON numbers and digit strings as Unix time, minutes
# without seconds, comma fractions and offsets without a colon: none is RFC 3339.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError(f"not an RFC 3339 timestamp with offset: {value[:40]!r}")
    if isinstance(value, int | float):
        raise ValueError("expected an RFC 3339 string with offset, not a number")
    return value  # anything else: pydantic says what is wrong with it


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
