"""Quiet hours end to end (clause 6): a dispatcher whose window opens a minute
from now defers reminders to the opening, keeps them through a kill -9, and at
the opening decides each again from the consent state of that moment: the one
whose recipient said STOP during the night is dropped, the other dispatched.
What the person waits for goes at once, and what would arrive too late is
dropped. Every request gets exactly one final decision, and the audit agrees."""

import asyncio
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.audit.cli import AuditOptions, run_audit
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.topics import CONSENT_EVENTS, MESSAGES_DECISIONS, MESSAGES_OUTBOUND, MESSAGES_REQUESTS
from tests.support.kafka import TopicReader, produce
from tests.support.records import consent_granted, send_request, unique_phone
from tests.support.services import ROOT, ServiceProcess
from tests.support.signing import TRUST
from tests.support.stack import Stack
from tests.support.webhooks import signed, text_webhook

pytestmark = pytest.mark.e2e

# Room to set the scene (a restart of the dispatcher, a kill -9, another start)
# before the window opens.
LEAD = timedelta(seconds=75)


def _window_opening_soon() -> tuple[datetime, dict[str, str]]:
    """Returns the next whole minute at least LEAD away, and a 12-hour UTC window
    that opens then (the requests name UTC as the recipients' zone)."""
    now = datetime.now(UTC)
    minute = math.ceil((now + LEAD).timestamp() / 60) * 60
    opens = datetime.fromtimestamp(minute, UTC)
    closes = opens + timedelta(hours=12)
    return opens, {"default": f"{opens:%H:%M}-{closes:%H:%M}"}


@pytest.fixture(scope="module")
def night(
    stack: Stack, services: dict[str, ServiceProcess]
) -> Iterator[tuple[datetime, dict[str, str], ServiceProcess]]:
    """Replaces the session's dispatcher with one whose window opens soon, and
    puts the session's back afterwards."""
    opens, windows = _window_opening_soon()
    usual = services["dispatcher"]
    usual.stop()
    log_dir = ROOT / ".local" / "test-logs"
    env = {
        "DISPATCHER_QUIET_HOURS": json.dumps(windows),
        "DISPATCHER_RELEASE_INTERVAL_SECONDS": "0.5",
    }
    dispatcher = ServiceProcess("dispatcher", stack, log_dir, env)
    dispatcher.start()
    try:
        dispatcher.wait_ready()
        yield opens, windows, dispatcher
    finally:
        dispatcher.stop()
        usual.start()
        usual.wait_ready()


def _of(reader: TopicReader, request_id: str) -> list[dict[str, Any]]:
    return [v for v in reader.values() if v.get("request_id") == request_id]


def _final(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in decisions if d["decision"] != "deferred"]


async def test_reminders_wait_for_the_window_survive_a_crash_and_meet_the_state_of_then(
    stack: Stack,
    services: dict[str, ServiceProcess],
    night: tuple[datetime, dict[str, str], ServiceProcess],
    tmp_path: Path,
) -> None:
    opens, windows, dispatcher = night
    kept, stopped = unique_phone(), unique_phone()
    decisions = await TopicReader(stack.kafka_bootstrap, MESSAGES_DECISIONS).start()
    outbound = await TopicReader(stack.kafka_bootstrap, MESSAGES_OUTBOUND).start()
    try:
        grants = [
            (p, consent_granted(p, "event_reminder", "registration_confirmation"))
            for p in (kept, stopped)
        ]
        await produce(stack.kafka_bootstrap, CONSENT_EVENTS, grants)
        remind_kept = send_request(kept, timezone="UTC")
        remind_stopped = send_request(stopped, timezone="UTC")
        welcome = send_request(kept, "registration_confirmation", timezone="UTC")
        too_late = send_request(
            kept, timezone="UTC", deliver_by=(opens - timedelta(seconds=10)).isoformat()
        )
        asked = [remind_kept, remind_stopped, welcome, too_late]
        await produce(
            stack.kafka_bootstrap, MESSAGES_REQUESTS, [(r["recipient"], r) for r in asked]
        )
        await decisions.wait_for(lambda _: all(_of(decisions, r["request_id"]) for r in asked))
        for reminder in (remind_kept, remind_stopped):
            [deferred] = _of(decisions, reminder["request_id"])
            assert (deferred["decision"], deferred["reason"]) == ("deferred", "quiet_hours")
            assert datetime.fromisoformat(deferred["not_before"]) == opens
        [sent_at_once] = _of(decisions, welcome["request_id"])
        assert (sent_at_once["decision"], sent_at_once["reason"]) == ("dispatched", "consented")
        [dropped] = _of(decisions, too_late["request_id"])
        assert (dropped["decision"], dropped["reason"]) == ("dropped", "deliver_by_passed")

        # The user says STOP in the night: its confirmation is never deferred.
        raw, headers = signed(text_webhook(stopped[1:], "STOP"))
        async with httpx.AsyncClient(base_url=services["inbound"].url) as http:
            assert (await http.post("/webhooks/whatsapp", content=raw, headers=headers)).is_success
        await decisions.wait_for(
            lambda _: any(
                v.get("recipient") == stopped and v["purpose"] == "opt_out_confirmation"
                for v in decisions.values()
            )
        )
        [confirmation] = [
            v
            for v in decisions.values()
            if v.get("recipient") == stopped and v["purpose"] == "opt_out_confirmation"
        ]
        assert confirmation["decision"] == "dispatched"
        assert datetime.now(UTC) < opens, "the scene took longer than the lead: raise LEAD"

        # A crash while they wait loses nothing: they are kept in PostgreSQL.
        dispatcher.stop(kill=True)
        dispatcher.start()
        dispatcher.wait_ready()

        ids = (remind_kept["request_id"], remind_stopped["request_id"])
        wait = (opens - datetime.now(UTC)).total_seconds() + 60
        await decisions.wait_for(lambda _: all(_final(_of(decisions, i)) for i in ids), wait)
        [released] = _final(_of(decisions, remind_kept["request_id"]))
        assert (released["decision"], released["reason"]) == ("dispatched", "consented")
        assert datetime.fromisoformat(released["decided_at"]) >= opens
        [after_stop] = _final(_of(decisions, remind_stopped["request_id"]))
        assert (after_stop["decision"], after_stop["reason"]) == ("dropped", "opted_out")
        await outbound.wait_for(
            lambda rs: any(
                dict(r.headers).get("request_id") == remind_kept["request_id"].encode() for r in rs
            )
        )
        await asyncio.sleep(2)  # nothing more comes: one deferral and one final each
        await decisions.poll()
        assert [d["decision"] for d in _of(decisions, ids[0])] == ["deferred", "dispatched"]
        assert [d["decision"] for d in _of(decisions, ids[1])] == ["deferred", "dropped"]
        assert not any(
            dict(r.headers).get("request_id") == remind_stopped["request_id"].encode()
            for r in outbound.records
        )
    finally:
        await decisions.stop()
        await outbound.stop()

    run = await run_audit(
        AuditOptions(
            bootstrap=stack.kafka_bootstrap,
            trust=TRUST,
            out=None,
            subjects=frozenset({kept, stopped}),
            quiet_hours=QuietHoursPolicy.from_settings(windows),
            progress=False,
        )
    )
    assert [f.kind for f in run.report.findings if f.severity == "violation"] == []
    assert run.report.exit_code == 0
