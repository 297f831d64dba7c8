"""Makes text storable in PostgreSQL: its `text` and `jsonb` refuse U+0000 (NUL).

JSON may carry "\\u0000" anywhere. A record that reached the database with one
would fail its batch's transaction on every retry and stop the consumer
behind it. So the parsers of the wire records (`parse_consent_event`,
`parse_send_request`) refuse identifiers and codes that hold a NUL like any
other malformed field, and replace the NULs of free-form proof (a
ConsentEvent's `evidence`), so that an opt-out is never refused for the text
the user sent. Copies kept only for information are cleaned.

A NUL can only come as that escape (JSON forbids raw control characters), so a
search of the raw bytes, far cheaper than validating every string, tells the
records that need a closer look: almost none.
"""

from collections.abc import Collection, Mapping
from typing import Any

from shared.rejection import Rejected

NUL = "\x00"
REPLACEMENT = "\ufffd"
_ESCAPED_NUL = b"\\u0000"


def storable(
    raw: bytes | None,
    body: dict[str, Any],
    refused: Mapping[str, str],
    replaced: Collection[str] = (),
) -> dict[str, Any] | Rejected:
    """Returns `body` (decoded from `raw`), refused with the reason `refused` names for the
    first field that holds a NUL, or with the NULs of the `replaced` fields replaced.
    Fields in neither are left to their own rules (a phone number, an enum)."""
    if raw is None or not may_hold_nul(raw):
        return body
    for field, reason in refused.items():
        if holds_nul(body.get(field)):
            return Rejected(
                reason=reason,
                detail=f"{field}: U+0000 (NUL) is not allowed: the database cannot store it",
            )
    return {**body, **{f: without_nul(body[f]) for f in replaced if f in body}}


def may_hold_nul(raw: bytes) -> bool:
    """Returns False when no string in the JSON document `raw` can hold a NUL."""
    return _ESCAPED_NUL in raw


def holds_nul(value: Any) -> bool:
    """Tells whether any string in a JSON value, key or value, holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(NUL in key or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def without_nul(value: Any) -> Any:
    """Returns the JSON value with every NUL replaced by U+FFFD; the same object when it
    held none."""
    if not holds_nul(value):
        return value
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return [without_nul(item) for item in value]


def cleaned(value: str | None) -> str | None:
    """Makes storable a copy kept for information only."""
    return None if value is None else value.replace(NUL, REPLACEMENT)
