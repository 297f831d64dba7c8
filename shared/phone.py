"""Phone numbers: one canonical form (E.164) for keys, rows and comparisons."""

import re
from functools import lru_cache

import phonenumbers

# A wa_id is the number's digits without '+'; anything else (spaces, dashes,
# national prefixes) is ambiguous across countries, so it is refused.
_ACCEPTED = re.compile(r"\+?[1-9][0-9]{5,14}")


class InvalidPhoneNumberError(ValueError):
    """The value is not an E.164 number or WhatsApp wa_id digits of a valid number."""


@lru_cache(maxsize=262_144)
def normalize_phone(raw: str) -> str:
    """Return the E.164 form of an E.164 string or wa_id digits.

    Cached because parsing and validation cost ~19 µs and a stream repeats
    the same recipients many times.
    """
    value = raw.strip()
    if not _ACCEPTED.fullmatch(value):
        raise InvalidPhoneNumberError(f"not an E.164 number or wa_id digits: {_mask(value)!r}")
    digits = value.lstrip("+")
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError(f"unparseable phone number {_mask(value)!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumberError(f"not a valid phone number: {_mask(value)!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def wa_id(e164: str) -> str:
    """The digits WhatsApp uses as `to` and `wa_id`."""
    return e164.lstrip("+")


def mask_phone(value: str) -> str:
    """`+79161234567` -> `+7916*****67`: enough to correlate logs, not to dial."""
    return _mask(value)


def _mask(value: str) -> str:
    if len(value) <= 6:
        return "*" * len(value)
    head = 5 if value.startswith("+") else 4
    return value[:head] + "*" * (len(value) - head - 2) + value[-2:]


def mask_bsuid(value: str) -> str:
    """Hide all of a BSUID (business-scoped user id) but its country and last two characters.

    `US.13491208655302741918` -> `US.******************18`, and a parent's
    `US.ENT.` prefix stays whole: enough to tell two users apart in a log, not
    to message either.
    """
    head, _, rest = value.rpartition(".")
    if len(rest) <= 4:
        return head + "." + "*" * len(rest)
    return head + "." + "*" * (len(rest) - 2) + rest[-2:]
