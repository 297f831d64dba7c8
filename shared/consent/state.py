"""Holds the state of one subject's consent, as folded from its events."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.contract.events import ConsentEvent
from shared.contract.purposes import Purpose

# Where an event sorts in its subject's history (contract section 2).
OrderKey = tuple[datetime, datetime, int, int]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """Pairs a ConsentEvent with its place in the log: what the fold orders by. A plain
    dataclass: its parts are validated already, and a rebuild makes millions."""

    event: ConsentEvent
    log_time: datetime
    partition: int
    offset: int
    clamped: bool = False  # occurred_at was later than log_time and was set to it
    # False only for an event that claims to come from WhatsApp without a valid
    # signature of the service that heard it: a restriction, taken on trust because a
    # forged one can only stop messages (shared/consent/authenticity.py).
    authenticated: bool = True

    @classmethod
    def from_log(
        cls,
        event: ConsentEvent,
        log_time: datetime,
        partition: int,
        offset: int,
        authenticated: bool = True,
    ) -> "LoggedEvent":
        bounded = event.clamped_to(log_time)
        return cls(bounded, log_time, partition, offset, bounded is not event, authenticated)

    def order_key(self) -> OrderKey:
        # Contract section 2: occurred_at (never later than the broker's clock),
        # then the broker's timestamp, then the position.
        occurred = min(self.event.occurred_at, self.log_time)
        return (occurred, self.log_time, self.partition, self.offset)

    def log_key(self) -> tuple[datetime, int, int]:
        return (self.log_time, self.partition, self.offset)


class Status(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    UNKNOWN = "unknown"


class Grant(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    granted_at: datetime
    expires_at: datetime | None
    event_id: str

    def expired_at(self, moment: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= moment


class Revocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    grant: Grant
    revoked_at: datetime
    event_id: str


class PlatformStop(BaseModel):
    """Names the platform's stop (MarketingStopped) that holds a purpose back."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    stopped_at: datetime


class SubjectState(BaseModel):
    """`grants` are the purposes that count now (expiry is judged at decision time);
    `suspended` are the grants the current opt-out revoked, which an OptedIn restores."""

    model_config = ConfigDict(frozen=True)

    subject: str
    grants: dict[Purpose, Grant] = {}
    revoked: dict[Purpose, Revocation] = {}
    suspended: dict[Purpose, Grant] = {}
    opted_out: bool = False
    opt_out_event_id: str | None = None
    opted_out_at: datetime | None = None
    # Whether the current opt-out is proved to be the person's own STOP: only such an
    # opt-out gets its one confirmation, or a forged STOP could make the gate send any
    # text to any number, once per forgery. True on states stored before the field.
    opt_out_authenticated: bool = True
    last_event_id: str | None = None
    version: int = 0
    # The IANA time zone the latest grant naming one gave: quiet hours are reckoned
    # in it when a request names none.
    timezone: str | None = None
    # Every identifier of the person (this one too), sorted, when they have more
    # than one (shared/consent/people.py); empty: known by this one alone.
    identifiers: tuple[str, ...] = ()
    # The platform's own signals. `paused`: purposes a MarketingStopped holds back,
    # an overlay on the grants, which it leaves as they were (only a resume, or the
    # person's own new grant, lifts it); `held_until`: the platform limits what the
    # person receives until then (DeliveryLimited); `failed_deliveries`:
    # undeliverable reports per identifier since the person last wrote.
    paused: dict[Purpose, PlatformStop] = {}
    held_until: datetime | None = None
    failed_deliveries: dict[str, int] = {}
    # The person asked to be erased (ErasureRequested): nothing is sent to them from
    # then on, whatever comes after, until the erasure is carried out.
    erasure_event_id: str | None = None
    erasure_requested_at: datetime | None = None

    @property
    def status(self) -> Status:
        if self.opted_out or self.erasure_event_id is not None:
            return Status.OPTED_OUT
        counting = any(purpose not in self.paused for purpose in self.grants)
        return Status.OPTED_IN if counting else Status.UNKNOWN

    @property
    def has_history(self) -> bool:
        return self.version > 0
