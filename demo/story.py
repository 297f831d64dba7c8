"""`python -m demo.story` (`make demo`): the story of one user on the RUNNING
system (`make up`), told the way another system would drive it: Kafka topics and
HTTP only, nothing imported from the services' internals.

A registration grants consent, a reminder is dispatched, the user replies СТОП
through the signed WhatsApp webhook, the confirmation goes out in Russian, the
next reminder is dropped as opted_out, and the audit of that user's log is clean.
Exit status: 0 when every step happened as expected, 1 when one did not, 2 when
the system is not running."""

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from demo.console import (
    WAIT_S,
    StepFailedError,
    Watcher,
    header,
    http,
    ready,
    say,
    show,
    step,
    value,
    webhook_body,
)
from shared.kafka.security import security_options
from shared.settings import CommonSettings
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS


class Story:
    def __init__(self, args: argparse.Namespace, settings: CommonSettings) -> None:
        self.args = args
        self.bootstrap = settings.kafka_bootstrap_servers
        self.secret = settings.whatsapp_app_secret.get_secret_value().encode()
        # A fresh Russian mobile number each run: the story never meets an old one.
        self.phone = "+7916" + "".join(secrets.choice("0123456789") for _ in range(7))

    async def _open(self) -> None:
        # aiokafka clients belong to the running event loop: made here, not in __init__.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            **security_options(),
        )
        self.events = Watcher(self.bootstrap, CONSENT_EVENTS)
        self.decisions = Watcher(self.bootstrap, MESSAGES_DECISIONS)
        self.outbound = Watcher(self.bootstrap, MESSAGES_OUTBOUND)
        await self.producer.start()
        for watcher in (self.events, self.decisions, self.outbound):
            await watcher.start()

    async def produce(self, topic: str, body: dict[str, Any]) -> str:
        meta = await (await self.producer.send(topic, orjson.dumps(body), key=self.phone.encode()))
        return f"{topic} partition {meta.partition} offset {meta.offset}"

    async def decision_for(self, request_id: str) -> dict[str, Any]:
        record = await self.decisions.first(
            lambda r: value(r).get("request_id") == request_id, f"decision for {request_id}"
        )
        return value(record)

    async def outbound_for(self, request_id: str) -> dict[str, Any]:
        record = await self.outbound.first(
            lambda r: header(r, "request_id") == request_id, f"message for {request_id}"
        )
        return value(record)

    def reminder(self) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "recipient": self.phone,
            "purpose": "event_reminder",
            "message": {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
            "requested_at": datetime.now(UTC).isoformat(),
            "opt_out_event_id": None,
        }

    async def run(self) -> None:
        await self._open()
        try:
            await self.grant()
            await self.remind(expect=("dispatched", "consented"))
            stop_id = await self.reply_stop()
            await self.confirmation(stop_id)
            await self.remind(expect=("dropped", "opted_out"), number=5)
        finally:
            await self.producer.stop()
            for watcher in (self.events, self.decisions, self.outbound):
                await watcher.consumer.stop()
        self.audit()

    async def grant(self) -> None:
        step(1, "A registration grants consent")
        say(f"   the user {self.phone} registers for a workshop and ticks 'remind me'")
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "ConsentGranted",
            "subject": self.phone,
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "event_registration",
            "purposes": ["event_reminder", "registration_confirmation"],
            "evidence": {
                "registration_id": f"R-{secrets.randbelow(10**6)}",
                "form_url": "https://example.org/e/42",
            },
            "expires_at": None,
            # The registration form asked where the person lives: their quiet hours
            # are reckoned there (a +7 mobile number alone spans every Russian zone).
            "timezone": "Europe/Moscow",
        }
        show("ConsentGranted → " + await self.produce(CONSENT_EVENTS, event), event)
        url = f"{self.args.consent}/v1/subjects/{self.phone}/consent"
        deadline = time.monotonic() + WAIT_S
        while True:
            status, text = http("GET", url)
            state = json.loads(text) if status == 200 else {}
            if state.get("status") == "opted_in":
                break
            if time.monotonic() > deadline:
                raise StepFailedError(f"the consent API never showed opted_in: {status} {text}")
            await asyncio.sleep(0.2)
        show(f"GET {url}", {"status": state["status"], "purposes": sorted(state["purposes"])})

    async def remind(self, expect: tuple[str, str], number: int = 2) -> None:
        title = "A reminder is dispatched" if number == 2 else "The next reminder is dropped"
        step(number, title)
        request = self.reminder()
        show("SendRequest → " + await self.produce(MESSAGES_REQUESTS, request), request)
        decision = await self.decision_for(request["request_id"])
        show(
            "DispatchDecision",
            {
                k: decision.get(k)
                for k in (
                    "decision",
                    "reason",
                    "consent_event_id",
                    "decided_at",
                    "fence",
                    "not_before",
                )
            },
        )
        if (decision["decision"], decision["reason"]) == ("deferred", "quiet_hours"):
            # Night in the recipient's time zone: the reminder waits for the window.
            say(
                f"   outside the recipient's quiet-hours window: decided again at "
                f"{decision['not_before']} ✓"
            )
            return
        if (decision["decision"], decision["reason"]) != expect:
            raise StepFailedError(
                f"expected {'/'.join(expect)}, got {decision['decision']}/{decision['reason']}"
            )
        if expect[0] == "dispatched":
            show("messages.outbound.v1", await self.outbound_for(request["request_id"]))
            return
        # The decision and its message are written in one Kafka transaction: with
        # the decision visible, a message would be visible too.
        await asyncio.sleep(1.0)
        for batch in (await self.outbound.consumer.getmany(timeout_ms=500)).values():
            self.outbound.records.extend(batch)
        if any(header(r, "request_id") == request["request_id"] for r in self.outbound.records):
            raise StepFailedError("a message went out for a dropped reminder")
        say("   nothing on messages.outbound.v1 for it ✓")

    async def reply_stop(self) -> str:
        step(3, "The user replies СТОП (signed WhatsApp webhook)")
        raw = orjson.dumps(webhook_body(self.phone.lstrip("+"), "СТОП"))
        signature = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        url = f"{self.args.inbound}/webhooks/whatsapp"
        status, text = http(
            "POST", url, raw, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        )
        show(f"POST {url} (X-Hub-Signature-256: {signature[:19]}…)", f"{status} {text}")
        if status != 200:
            raise StepFailedError(f"the webhook answered {status}, not 200")
        record = await self.events.first(
            lambda r: value(r).get("subject") == self.phone and value(r).get("type") == "OptedOut",
            "OptedOut for the demo user",
        )
        event = value(record)
        show("OptedOut ← consent.events.v1", {k: event[k] for k in ("event_id", "evidence")})
        return str(event["event_id"])

    async def confirmation(self, stop_id: str) -> None:
        step(4, "The confirmation goes out, in Russian")
        record = await self.decisions.first(
            lambda r: value(r).get("opt_out_event_id") == stop_id, "confirmation decision"
        )
        decision = value(record)
        show(
            "DispatchDecision",
            {
                k: decision.get(k)
                for k in ("request_id", "purpose", "decision", "reason", "opt_out_event_id")
            },
        )
        if (decision["decision"], decision["reason"]) != ("dispatched", "opt_out_confirmation"):
            raise StepFailedError(
                f"the confirmation was {decision['decision']}/{decision['reason']}"
            )
        message = await self.outbound_for(decision["request_id"])
        show("messages.outbound.v1", message)
        body = str(message.get("text", {}).get("body", ""))
        if not re.search("[А-Яа-яЁё]", body):
            raise StepFailedError(f"the confirmation is not in Russian: {body!r}")

    def audit(self) -> None:
        step(6, "The audit of this user's log is clean")
        command = [
            sys.executable,
            "-m",
            "services.audit",
            "--subject",
            self.phone,
            "--bootstrap",
            self.bootstrap,
            "--out",
            self.args.out,
            "--no-progress",
        ]
        say("   $ python -m services.audit " + " ".join(command[3:]))
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        say("   " + done.stdout.strip().replace("\n", "\n   "))
        if done.returncode != 0:
            raise StepFailedError(f"the audit exited {done.returncode}: {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.story", description=__doc__)
    p.add_argument("--inbound", default="http://127.0.0.1:8081")
    p.add_argument("--consent", default="http://127.0.0.1:8082")
    p.add_argument("--dispatcher", default="http://127.0.0.1:8083")
    p.add_argument("--out", default="audit-report/demo", help="the audit report's folder")
    args = p.parse_args(argv)
    down = ready({"inbound": args.inbound, "consent": args.consent, "dispatcher": args.dispatcher})
    if down:
        say(f"demo: not ready: {', '.join(down)}. Start the system first: make up")
        return 2
    story = Story(args, CommonSettings())
    say(f"The story of {story.phone}, told through Kafka and HTTP as another system would.")
    try:
        asyncio.run(story.run())
    except StepFailedError as exc:
        say(f"\nDEMO FAILED: {exc}")
        return 1
    say("\nEvery step happened as the contract says. ✓")
    return 0


if __name__ == "__main__":
    sys.exit(main())
