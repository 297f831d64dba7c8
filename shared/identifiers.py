"""Names a person on a messaging channel: one canonical string per identifier.

A person may be known by several identifiers at once (clause 1.1 covers every
messaging platform): today a phone number, in E.164, and a WhatsApp
business-scoped user id (BSUID), as Meta writes it (`US.13491208655302741918`,
a parent portfolio's `US.ENT.…`). Each kind is told apart by its form alone,
so the log, the tables and the API keep plain strings; a channel added later
(a Telegram user id, say) brings a form of its own, such as `telegram:…`.
"""

import re
from enum import StrEnum
from functools import lru_cache

from shared.phone import InvalidPhoneNumberError, mask_bsuid, mask_phone, normalize_phone

# Meta: the country code, a dot, up to 128 alphanumerics; a parent user id of a
# linked business portfolio puts `ENT.` after the country.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}", re.ASCII)


class IdentifierKind(StrEnum):
    PHONE = "phone"
    WHATSAPP_USER_ID = "whatsapp_user_id"


class InvalidIdentifierError(InvalidPhoneNumberError):
    """The value is neither a phone number (E.164 or wa_id digits) nor a BSUID.

    A kind of InvalidPhoneNumberError: the contract names the refusal
    `invalid_phone`, and producers that send only phone numbers rely on it.
    """


def is_bsuid(value: str) -> bool:
    return _BSUID.fullmatch(value) is not None


@lru_cache(maxsize=262_144)
def normalize_identifier(raw: str) -> str:
    """Returns a BSUID as given (its case is part of it) or a phone number in E.164."""
    value = raw.strip()
    if is_bsuid(value):
        return value
    try:
        return normalize_phone(value)
    except InvalidPhoneNumberError as exc:
        raise InvalidIdentifierError(
            f"{exc}; nor a WhatsApp user id (CC.digits-or-letters)"
        ) from exc


def first_identifier(*candidates: str | None) -> str | None:
    """Returns the first candidate that is a valid identifier, normalised: a webhook
    names a user by phone number when Meta may share it, by user id otherwise."""
    for candidate in candidates:
        if candidate:
            try:
                return normalize_identifier(candidate)
            except InvalidPhoneNumberError:
                continue
    return None


def identifier_kind(identifier: str) -> IdentifierKind:
    """Tells the kind of a normalised identifier."""
    return IdentifierKind.WHATSAPP_USER_ID if is_bsuid(identifier) else IdentifierKind.PHONE


def mask_identifier(identifier: str) -> str:
    """Masks an identifier of any kind: enough to correlate, not to reach the person."""
    return mask_bsuid(identifier) if is_bsuid(identifier) else mask_phone(identifier)
