"""One run: the stack up, the services started, traffic and hostile records for the
whole run while the injector breaks and heals things, a drain, the checks from the
outside, and the stack stopped whatever happened."""

import asyncio
import fcntl
import os
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass

import orjson

from chaos.checks import judge
from chaos.faults import Injector
from chaos.history import OTHER, History, RequestKind
from chaos.observe import observe
from chaos.observed import Observed
from chaos.poison import Hostile
from chaos.producer import RetryingProducer
from chaos.report import render
from chaos.services import Services
from chaos.stack import CHAOS_DIR, LOG_DIR, ChaosStack
from chaos.tails import LiveTails
from chaos.traffic import Traffic, draw_phones
from chaos.webhooks import WebhookSender


@dataclass(frozen=True)
class Options:
    minutes: float
    seed: int
    rate: float = 20.0  # send requests a second (grants, STOPs and others in proportion)
    drain_timeout: float = 240.0


def say(text: str) -> None:
    print(f"[chaos] {text}", flush=True)


def _rotate_logs() -> None:
    previous = LOG_DIR.with_name("logs.prev")
    if LOG_DIR.exists():
        shutil.rmtree(previous, ignore_errors=True)
        LOG_DIR.rename(previous)
    LOG_DIR.mkdir(parents=True)


async def drain(history: History, tails: LiveTails, timeout: float) -> float | None:
    """Seconds from the traffic's end until every acknowledged request and every
    request on the log is decided and every acknowledged STOP/START is on the log;
    None when that took longer than `timeout`."""
    wanted = {r.request_id for r in history.acked_requests() if r.kind is not RequestKind.POISON}
    replies = {r.message_id for r in history.acked_replies() if r.kind != OTHER}
    while time.time() - history.ended_at < timeout:
        undecided = (wanted | tails.requested) - tails.decided.keys()
        if not undecided and replies <= tails.reply_seen.keys():
            return time.time() - history.ended_at
        await asyncio.sleep(0.5)
    return None


async def _drive(options: Options, stack: ChaosStack, history: History, observed: Observed) -> None:
    # One generator each, so that the plan of faults does not depend on how the
    # traffic's tasks happened to interleave: a seed names the same faults.
    rng = random.Random(f"traffic-{options.seed}")
    services = Services(stack.env(), stack.log_dir)
    try:
        say("starting the services on 18081-18083")
        await services.start()
        async with LiveTails(stack.bootstrap) as tails:
            producer = RetryingProducer(stack.bootstrap, history)
            hostile_producer = RetryingProducer(stack.bootstrap, history)
            await producer.start()
            await hostile_producer.start()
            webhooks = WebhookSender(services["inbound"].url, stack.app_secret.encode())
            phones = draw_phones(rng, int(200 + 50 * options.minutes) + 42)
            rng.shuffle(phones)
            probes, (hostile_subject, hostile_recipient), subjects = (
                phones[:40],
                phones[40:42],
                phones[42:],
            )
            traffic = Traffic(
                rng, producer, webhooks, services["consent"].url, history, subjects, options.rate
            )
            hostile = Hostile(
                hostile_producer,
                history,
                random.Random(f"hostile-{options.seed}"),
                hostile_subject,
                hostile_recipient,
            )
            injector = Injector(
                random.Random(f"faults-{options.seed}"),
                stack,
                services,
                traffic,
                hostile,
                tails,
                history,
                probes,
            )
            say(f"{len(subjects)} subjects: most consent first")
            await traffic.seed([*probes, hostile_recipient])
            history.started_at = time.time()
            until = history.started_at + options.minutes * 60
            watchdog = asyncio.create_task(services.watch(history.unexpected_exits, time.time()))
            say(f"traffic and faults for {options.minutes:g} min")
            try:
                await asyncio.gather(
                    traffic.run(until), hostile.trickle(until), injector.run(until)
                )
                history.ended_at = until  # when the traffic stopped
                say("traffic stopped: waiting for what is in flight, then for the drain")
                await traffic.finish(timeout=180)
                observed.drain_seconds = await drain(history, tails, options.drain_timeout)
            finally:
                watchdog.cancel()
                await traffic.close()
                await webhooks.close()
                await producer.stop()
                await hostile_producer.stop()
            say("reading the outcome: rebuild --verify, the consent API, the audit, the topics")
            await observe(stack, services["consent"].url, history, tails, observed)
    finally:
        services.stop()


class RunInProgressError(RuntimeError):
    """Another run holds the stack: starting would stop and wipe it under that run."""


def _hold_the_stack() -> int:
    """An exclusive lock for the run's lifetime (released when the process ends)."""
    CHAOS_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(CHAOS_DIR / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunInProgressError(f"another chaos run holds {CHAOS_DIR}/run.lock") from None
    return fd


async def run(options: Options) -> int:
    lock = _hold_the_stack()
    try:
        return await _run(options)
    finally:
        os.close(lock)


async def _run(options: Options) -> int:
    _rotate_logs()
    stack = ChaosStack(app_secret=f"chaos-{uuid.uuid4().hex}")
    history = History(seed=options.seed, started_at=time.time())
    observed = Observed(drain_timeout=options.drain_timeout)
    try:
        say("starting 3 Kafka brokers and PostgreSQL under .local/chaos (a fresh stack)")
        await stack.start()
        await _drive(options, stack, history, observed)
    finally:
        say("stopping the stack")
        await asyncio.shield(stack.stop())
        history.ended_at = history.ended_at or time.time()
        (LOG_DIR / "history.json").write_bytes(
            orjson.dumps(history.to_json(), option=orjson.OPT_INDENT_2)
        )
    verdicts = judge(history, observed)
    text = render(history, observed, verdicts)
    (LOG_DIR / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    print(f"(logs, history.json, report.txt and the audit report: {LOG_DIR})", file=sys.stderr)
    return 0 if all(v.held is not False for v in verdicts) else 1
