"""Another system's load for the whole run: ConsentGranted events, SendRequests (some
redelivered with the same request_id), signed STOP/СТОП webhooks (START for some
later), and a poller per acknowledged STOP that notes when the consent API first
answers opted_out."""

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from chaos.history import OTHER, START, STOP, Grant, History, Reply, RequestKind, SentRequest
from chaos.producer import RetryingProducer
from chaos.webhooks import WebhookSender
from shared.contract.purposes import Purpose
from shared.phone import InvalidPhoneNumberError, normalize_phone
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS

SOURCES = ("event_registration", "notification_subscription", "website_form")
REQUEST_PURPOSES = {
    "event_reminder": 60,
    "registration_confirmation": 15,
    "educational_material": 10,
    "customer_support": 5,
    "marketing": 10,  # not a clause 3.2 purpose: purpose_not_permitted
}
STOP_TEXTS = ("STOP", "СТОП", "stop", "Стоп!")
START_TEXTS = ("START", "СТАРТ")
OTHER_TEXTS = ("hello", "когда начало?", "thanks!")


def draw_phones(rng: random.Random, count: int) -> list[str]:
    phones: set[str] = set()
    while len(phones) < count:
        try:
            phones.add(normalize_phone(f"+79{rng.randrange(10**9):09d}"))
        except InvalidPhoneNumberError:
            continue  # outside the numbering plan
    return sorted(phones)


def _now_iso(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + offset).isoformat()


class Traffic:
    def __init__(
        self,
        rng: random.Random,
        producer: RetryingProducer,
        webhooks: WebhookSender,
        consent_url: str,
        history: History,
        subjects: list[str],
        rate: float,
    ) -> None:
        self.rng = rng
        self.producer = producer
        self.webhooks = webhooks
        self.consent_url = consent_url
        self.history = history
        self.subjects = subjects
        self.rate = rate
        self.stopped: set[str] = set()  # a STOP was sent: no grant and no second STOP
        self.resendable: list[tuple[bytes, bytes, str]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.http = httpx.AsyncClient(timeout=2)
        self.until = 0.0

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------ records

    async def grant(self, subject: str) -> None:
        purposes = self.rng.sample([p.value for p in Purpose], self.rng.randint(1, 3))
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "type": "ConsentGranted",
            "subject": subject,
            "occurred_at": _now_iso(),
            "source": self.rng.choice(SOURCES),
            "purposes": ["event_reminder", *purposes],
            "evidence": {"registration_id": f"R-{self.rng.randrange(10**6)}"},
        }
        if self.rng.random() < 0.1:
            event["expires_at"] = _now_iso(timedelta(days=30))
        ack = await self.producer.send(CONSENT_EVENTS, subject.encode(), orjson.dumps(event))
        if ack is not None:
            self.history.grants.append(Grant(event["event_id"], subject, event["purposes"], ack.at))

    async def request(
        self, recipient: str, purpose: str, kind: RequestKind = RequestKind.TRAFFIC
    ) -> SentRequest:
        sent = SentRequest(f"chaos-{uuid.uuid4()}", recipient, purpose, time.time(), kind)
        self.history.requests[sent.request_id] = sent
        value = orjson.dumps(
            {
                "request_id": sent.request_id,
                "recipient": recipient,
                "purpose": purpose,
                "message": {"type": "text", "text": {"body": "Reminder: the workshop at 10:00"}},
                "requested_at": _now_iso(),
            }
        )
        sent.sends += 1
        ack = await self.producer.send(MESSAGES_REQUESTS, recipient.encode(), value)
        if ack is not None:
            sent.acked_at = sent.acked_at or ack.at
            self.resendable.append((recipient.encode(), value, sent.request_id))
            del self.resendable[:-500]
        return sent

    async def redeliver(self) -> None:
        """The same record again, as a producer retrying after a lost acknowledgement."""
        if not self.resendable:
            return
        key, value, request_id = self.rng.choice(self.resendable)
        self.history.requests[request_id].sends += 1
        await self.producer.send(MESSAGES_REQUESTS, key, value)

    async def reply(self, subject: str, kind: str, text: str) -> None:
        reply = Reply(f"wamid.chaos.{uuid.uuid4().hex}", subject, text, kind, time.time())
        self.history.replies.append(reply)
        await self.webhooks.deliver(reply)
        if kind != STOP or reply.acked_at is None:
            return
        self.spawn(self._until_enforced(reply))
        later = self.rng.uniform(10, 30)
        if self.rng.random() < 0.3 and time.time() + later < self.until:
            await asyncio.sleep(later)
            await self.reply(subject, START, self.rng.choice(START_TEXTS))

    async def _until_enforced(self, reply: Reply, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.consent_url}/v1/subjects/{reply.subject}/consent"
        while time.monotonic() < deadline:
            try:
                response = await self.http.get(url)
                if response.status_code == 200 and response.json()["status"] == "opted_out":
                    reply.enforced_at = time.time()
                    return
            except httpx.HTTPError:
                pass  # the consent service is down or paused: ask again
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ the load

    async def seed(self, granted: list[str]) -> None:
        """Most subjects (and every probe and poison recipient) consent first."""
        chosen = [s for s in self.subjects if self.rng.random() < 0.7] + granted
        await asyncio.gather(*(self.grant(s) for s in chosen))

    def _new_request(self) -> Coroutine[Any, Any, None]:
        if self.rng.random() < 0.05:
            return self.redeliver()
        # A third of the requests go to subjects who said STOP: what must not be sent.
        pool = sorted(self.stopped) if self.stopped and self.rng.random() < 0.3 else self.subjects
        purpose = self.rng.choices(list(REQUEST_PURPOSES), list(REQUEST_PURPOSES.values()))[0]

        async def send() -> None:
            await self.request(self.rng.choice(pool), purpose)

        return send()

    def _new_grant(self) -> Coroutine[Any, Any, None]:
        free = [s for s in self.subjects if s not in self.stopped]
        return self.grant(self.rng.choice(free)) if free else asyncio.sleep(0)

    def _new_stop(self) -> Coroutine[Any, Any, None]:
        free = [s for s in self.subjects if s not in self.stopped]
        if not free:
            return asyncio.sleep(0)  # every subject said STOP already
        subject = self.rng.choice(free)
        self.stopped.add(subject)
        return self.reply(subject, STOP, self.rng.choice(STOP_TEXTS))

    def _new_other(self) -> Coroutine[Any, Any, None]:
        return self.reply(self.rng.choice(self.subjects), OTHER, self.rng.choice(OTHER_TEXTS))

    async def run(self, until: float) -> None:
        """Until `until` (epoch seconds), at about `rate` requests a second."""
        self.until = until
        await asyncio.gather(
            self._every(self.rate, self._new_request),
            self._every(self.rate / 5, self._new_grant),
            self._every(self.rate / 40, self._new_stop),
            self._every(self.rate / 100, self._new_other),
        )

    async def _every(
        self, per_second: float, make: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        while time.time() < self.until:
            await asyncio.sleep(self.rng.expovariate(per_second))
            self.spawn(make())

    async def finish(self, timeout: float) -> None:
        """What is in flight (retries, webhook redeliveries, pollers) may end first;
        what is left then is cancelled (all of it at once with timeout=0)."""
        if self.tasks and timeout > 0:
            await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in set(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.finish(timeout=0)
        await self.http.aclose()
