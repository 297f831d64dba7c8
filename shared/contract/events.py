"""Defines ConsentEvent, the records of the append-only log `consent.events.v1` (CONTRACT.md
section 2)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.contract.limits import MAX_DEPTH, MAX_EVIDENCE_BYTES
from shared.contract.purposes import Purpose
from shared.contract.timestamps import Timestamp, TimeZoneName
from shared.identifiers import normalize_identifier
from shared.phone import InvalidPhoneNumberError
from shared.rejection import RejectedError


class EventType(StrEnum):
    CONSENT_GRANTED = "ConsentGranted"
    CONSENT_REVOKED = "ConsentRevoked"
    OPTED_OUT = "OptedOut"
    OPTED_IN = "OptedIn"
    # Identity: which identifiers name one person. They change no consent by
    # themselves; they decide whose history an event joins (shared/consent/people.py).
    IDENTITY_LINKED = "IdentityLinked"
    IDENTIFIER_CHANGED = "IdentifierChanged"
    # What the platform itself reports of a user (shared/consent/fold.py): it never
    # lets more through than before.
    MARKETING_STOPPED = "MarketingStopped"
    MARKETING_RESUMED = "MarketingResumed"
    DELIVERY_LIMITED = "DeliveryLimited"
    DELIVERY_FAILED = "DeliveryFailed"
    USER_MESSAGED = "UserMessaged"
    # The person asked for their personal data to be erased (GDPR Art. 17; docs/erasure.md):
    # from then on nothing is sent to any of their identifiers.
    ERASURE_REQUESTED = "ErasureRequested"


CONSENT_TYPES = frozenset(
    {
        EventType.CONSENT_GRANTED,
        EventType.CONSENT_REVOKED,
        EventType.OPTED_OUT,
        EventType.OPTED_IN,
        EventType.ERASURE_REQUESTED,
    }
)
IDENTITY_TYPES = frozenset({EventType.IDENTITY_LINKED, EventType.IDENTIFIER_CHANGED})


class GrantSource(StrEnum):
    """Names how the user opted in (clause 2.2)."""

    EVENT_REGISTRATION = "event_registration"
    NOTIFICATION_SUBSCRIPTION = "notification_subscription"
    WEBSITE_FORM = "website_form"
    EXPLICIT_CONFIRMATION = "explicit_confirmation"


WHATSAPP_REPLY = "whatsapp_reply"
# Identity events come only from what Meta's signed webhooks said: a producer
# that could link any two identifiers could move a person's consent anywhere.
WHATSAPP_WEBHOOK = "whatsapp_webhook"
# The platform's own signals, each from where Meta reports it: the user_preferences
# webhook field, and the error codes of failed statuses (or of the send call).
WHATSAPP_USER_PREFERENCES = "whatsapp_user_preferences"
WHATSAPP_STATUS = "whatsapp_status"
# Who recorded an erasure request: the consent API, or an operator's command.
ERASURE_API = "erasure_api"
ERASURE_CLI = "erasure_cli"

_SIGNAL_SOURCES: dict[str, frozenset[str]] = {
    EventType.MARKETING_STOPPED: frozenset({WHATSAPP_USER_PREFERENCES, WHATSAPP_STATUS}),
    EventType.MARKETING_RESUMED: frozenset({WHATSAPP_USER_PREFERENCES}),
    EventType.DELIVERY_LIMITED: frozenset({WHATSAPP_STATUS}),
    EventType.DELIVERY_FAILED: frozenset({WHATSAPP_STATUS}),
    EventType.USER_MESSAGED: frozenset({WHATSAPP_REPLY}),
    EventType.ERASURE_REQUESTED: frozenset({ERASURE_API, ERASURE_CLI}),
}

# Events whose purposes mean nothing (ignored, whatever they hold), and those that
# take purposes away (absent on a revocation: all of them).
_PURPOSES_IGNORED = frozenset(
    {
        EventType.OPTED_OUT,
        EventType.OPTED_IN,
        EventType.MARKETING_RESUMED,
        EventType.DELIVERY_LIMITED,
        EventType.DELIVERY_FAILED,
        EventType.USER_MESSAGED,
        EventType.ERASURE_REQUESTED,
    }
)
_REVOKING = frozenset({EventType.CONSENT_REVOKED, EventType.MARKETING_STOPPED})

# Built once: membership tests run for every record on the log.
_PURPOSES = frozenset(p.value for p in Purpose)
GRANT_SOURCES = frozenset(s.value for s in GrantSource)
EVENT_TYPES = frozenset(t.value for t in EventType)


def _identifier(value: str) -> str:
    try:
        return normalize_identifier(value)
    except InvalidPhoneNumberError as exc:
        raise RejectedError("invalid_phone", str(exc)) from exc


# A phone number (E.164 or wa_id digits, stored as E.164) or a WhatsApp BSUID.
Identifier = Annotated[str, AfterValidator(_identifier)]
EventId = Annotated[str, Field(min_length=1, max_length=128)]


class ConsentEvent(BaseModel):
    """Holds one fact about a subject's consent. Validated as the contract's table says."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: EventId
    type: EventType
    subject: Identifier
    occurred_at: Timestamp
    source: str = Field(min_length=1)
    purposes: tuple[Purpose, ...] | None = None
    evidence: dict[str, Any] | None = Field(
        default=None,
        description=f"At most {MAX_DEPTH} levels deep and {MAX_EVIDENCE_BYTES} bytes of JSON "
        "(too_deep, too_large)",
    )
    expires_at: Timestamp | None = None
    timezone: TimeZoneName | None = Field(
        default=None,
        description="On ConsentGranted: the subject's IANA time zone (Europe/Moscow), in "
        "which their quiet hours are reckoned when a send request names none",
    )
    linked: Identifier | None = Field(
        default=None,
        description="On IdentityLinked (required): another identifier of the same person",
    )
    previous: Identifier | None = Field(
        default=None,
        description="On IdentifierChanged (required): the identifier `subject` replaces; "
        "it no longer names the person from occurred_at on",
    )

    @model_validator(mode="before")
    @classmethod
    def _purposes_per_type(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind, purposes = data.get("type"), data.get("purposes")
        if kind not in IDENTITY_TYPES and ("linked" in data or "previous" in data):
            # Only identity events name a second identifier: a stray one elsewhere
            # must never join two people.
            data = {k: v for k, v in data.items() if k not in ("linked", "previous")}
        if kind in _PURPOSES_IGNORED:
            # Contract: ignored on opt-outs and opt-ins; a stray value must never
            # keep an opt-out from counting.
            return data if purposes is None else {**data, "purposes": None}
        if purposes == [] and kind in _REVOKING:
            raise RejectedError(
                "missing_purposes", f"{kind} purposes, when given, must not be empty"
            )
        if purposes is None and kind == EventType.MARKETING_STOPPED:
            # Absent on a revocation means all; a platform's stop names what it stops.
            raise RejectedError("missing_purposes", "MarketingStopped needs its purposes")
        if not isinstance(purposes, list) or not purposes:
            return data
        allowed = _PURPOSES
        unknown = [p for p in purposes if not isinstance(p, str) or p not in allowed]
        if not unknown:
            return data
        if kind in _REVOKING:
            # What can never be granted needs no revoking; the known purposes still
            # are revoked, and a list of only unknown ones revokes nothing.
            return {**data, "purposes": [p for p in purposes if p not in unknown]}
        raise RejectedError(
            "purpose_not_permitted",
            f"{unknown!r} not among the clause 3.2 purposes {sorted(allowed)}",
        )

    @model_validator(mode="after")
    def _rules_per_type(self) -> "ConsentEvent":
        if self.type is EventType.CONSENT_GRANTED:
            if self.source not in GRANT_SOURCES:
                raise RejectedError(
                    "invalid_source",
                    f"ConsentGranted source {self.source!r} is not one of "
                    f"{[s.value for s in GrantSource]} (clause 2.2)",
                )
            if not self.purposes:
                raise RejectedError("missing_purposes", "ConsentGranted needs at least one purpose")
            if not self.evidence:
                raise RejectedError(
                    "missing_evidence", "ConsentGranted needs evidence of the opt-in (clause 2.1)"
                )
        elif self.type in (EventType.OPTED_OUT, EventType.OPTED_IN) and (
            self.source != WHATSAPP_REPLY
        ):
            raise RejectedError("invalid_source", f"{self.type} source must be {WHATSAPP_REPLY!r}")
        elif self.type in IDENTITY_TYPES:
            self._check_identity()
        elif self.type in _SIGNAL_SOURCES and self.source not in _SIGNAL_SOURCES[self.type]:
            raise RejectedError(
                "invalid_source",
                f"{self.type} source must be one of {sorted(_SIGNAL_SOURCES[self.type])}",
            )
        return self

    def _check_identity(self) -> None:
        if self.source != WHATSAPP_WEBHOOK:
            raise RejectedError(
                "invalid_source", f"{self.type} source must be {WHATSAPP_WEBHOOK!r}"
            )
        field = "linked" if self.type is EventType.IDENTITY_LINKED else "previous"
        other = getattr(self, field)
        if other is None:
            raise RejectedError("invalid_identity", f"{self.type} needs `{field}`")
        if other == self.subject:
            raise RejectedError(
                "invalid_identity", f"{self.type} `{field}` must differ from `subject`"
            )

    @property
    def other_identifier(self) -> str | None:
        """The second identifier an identity event names; None on consent events."""
        if self.type is EventType.IDENTITY_LINKED:
            return self.linked
        return self.previous if self.type is EventType.IDENTIFIER_CHANGED else None

    def clamped_to(self, log_time: datetime) -> "ConsentEvent":
        """A producer's clock may run ahead; the broker's append time bounds it."""
        if self.occurred_at <= log_time:
            return self
        return self.model_copy(update={"occurred_at": log_time})
