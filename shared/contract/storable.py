"""Text PostgreSQL can store: its `text` and `jsonb` refuse U+0000 (NUL).

JSON may carry "\\u0000" anywhere. A record that reached the database with one
would fail its batch's transaction on every retry and stop the consumer
behind it. So identifiers and codes with a NUL are refused like any other
malformed field; free-form proof (a ConsentEvent's `evidence`) has its NULs
replaced, so that an opt-out is never refused for the text the user sent;
and copies kept only for information (a refused request's key) are cleaned.
"""

from typing import Annotated, Any

from pydantic import AfterValidator

NUL = "\x00"
REPLACEMENT = "\ufffd"


def no_nul(value: str) -> str:
    """For an AfterValidator: a pydantic error at the field (its reason as mapped)."""
    if NUL in value:
        raise ValueError("U+0000 (NUL) is not allowed: the database cannot store it")
    return value


StorableText = Annotated[str, AfterValidator(no_nul)]


def holds_nul(value: Any) -> bool:
    """Whether any string in a JSON value, key or value, holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(NUL in key or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def without_nul(value: Any) -> Any:
    """The JSON value with every NUL replaced by U+FFFD; the same object when it held none."""
    if not holds_nul(value):
        return value
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return [without_nul(item) for item in value]


def cleaned(value: str | None) -> str | None:
    """A copy kept for information only, made storable."""
    return None if value is None else value.replace(NUL, REPLACEMENT)
