"""Signed webhook POSTs per second with p50/p99 latency to the acknowledged produce,
and classifier replies per second.

    python -m bench.bench_inbound [--quick] [--requests N] [--concurrency N] [--replies N]

The inbound service is the real one (`services.inbound.main`, in a process of its
own through `bench.isolated_service`, with KAFKA_TOPIC_PREFIX=bench.<run>.: its
topics are private, so the webhooks and the opt-outs its consumer derives from them
reach no one else), with a secret of the run's own. Bodies are WhatsApp Cloud API
text webhooks from fresh numbers, signed before the clock starts; --concurrency
connections POST them, kept alive (as Meta's delivery would: many at once), from
`bench.http_load`, a client cheap enough not to be the bottleneck (`--client httpx`
shows why it is needed: see that module). The service answers 200 only once the
body is acknowledged by the broker (acks=all), so the latency of a POST is the
latency to the acknowledged produce. The service's consumer runs
meanwhile, turning the STOPs into events, as it would in production.

The classifier (`classify_reply`) is timed alone, in this process, on one core,
over a corpus of English and Russian replies: keywords, phrases, look-alike
letters, and (most of it) ordinary conversation.
"""

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from random import Random

import httpx
import orjson

from bench.figures import Report, base_parser, percentile, sized
from bench.http_load import load, post_request
from bench.machine import CpuShare, RssSampler
from bench.private import (
    TopicSpec,
    delete_groups,
    free_port,
    group_lag,
    prefixed,
    private_topics,
    run_id,
    topic_prefix,
)
from bench.processes import ROOT, BenchProcess
from services.inbound.domain.classifier import classify_reply
from shared.settings import CommonSettings
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, WHATSAPP_INBOUND, dlq
from tests.support.webhooks import signature_headers, text_webhook

HOST = "127.0.0.1"
PATH = "/webhooks/whatsapp"
OPT_OUT = [
    "STOP", "stop", "Stop please", "STOP ALL", "UNSUBSCRIBE", "opt out", "СТОП", "стоп",
    "Отписаться", "отпишите меня от рассылки пожалуйста", "please stop sending me these messages",
    "больше не пишите мне", "remove me from the list", "how do I unsubscribe", "SТОР",
    "stop!!!", "Прекратите присылать сообщения", "don't message me again",
]  # fmt: skip
OPT_IN = ["START", "start", "Старт", "subscribe me again", "ПОДПИСАТЬСЯ", "подпишите меня снова"]
OTHER = [
    "Thanks, see you tomorrow!", "What time does the workshop start?", "Спасибо, буду!",
    "Когда начало?", "Can I bring a friend?", "👍", "ok", "Да", "no", "Hello",
    "Where is the venue? I can't find the address on the map, could you send it again?",
    "Добрый день! Подскажите, пожалуйста, нужно ли брать с собой паспорт на регистрацию?",
    "I registered twice by mistake, can you cancel one of the registrations please",
    "Не смогу прийти в четверг, можно перенести на следующую неделю?",
    "stop by the office later?", "Don't forget to send the slides", "Стоп, а во сколько начало?",
    "Thank you so much for the reminder. I will be there at 10 with my colleague. " * 6,
    "Здравствуйте. Я записывался на мастер-класс, но не получил подтверждение. " * 5,
]  # fmt: skip


def corpus(n: int, seed: int = 13) -> list[str]:
    """Mostly conversation (80 %), opt-outs (15 %) and opt-ins (5 %), shuffled."""
    rng = Random(seed)
    pools = [(OTHER, 0.80), (OPT_OUT, 0.15), (OPT_IN, 0.05)]
    texts = []
    for _ in range(n):
        roll, acc = rng.random(), 0.0
        for texts_of_kind, share in pools:
            acc += share
            if roll < acc:
                texts.append(texts_of_kind[rng.randrange(len(texts_of_kind))])
                break
        else:
            texts.append(OTHER[0])
    return texts


def bench_classifier(report: Report, n: int) -> None:
    texts = corpus(n)
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for text in texts:
        kinds[classify_reply(text).kind] += 1
    elapsed = time.perf_counter() - started
    report.figure("classify_reply, one core", n / elapsed, "replies/s")
    report.note(
        f"classifier: {elapsed / n * 1e6:.1f} µs per reply; "
        + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items()))
    )
    for label, group in (("opt-out replies", OPT_OUT), ("long conversation", OTHER[-2:])):
        started = time.perf_counter()
        rounds = max(1, 2000 // len(group))
        for _ in range(rounds):
            for text in group:
                classify_reply(text)
        per = (time.perf_counter() - started) / (rounds * len(group)) * 1e6
        report.note(f"classifier on {label} alone: {per:.1f} µs per reply")


def signed_bodies(n: int, secret: bytes, rid: str) -> list[tuple[bytes, dict[str, str]]]:
    rng = Random(rid)
    bodies = []
    for i, text in enumerate(corpus(n, seed=17)):
        wa_id = f"7916{rng.randrange(10_000_000):07d}"
        raw = orjson.dumps(text_webhook(wa_id, text, message_id=f"wamid.bench.{rid}.{i}"))
        bodies.append((raw, signature_headers(raw, secret)))
    return bodies


async def post_all(
    port: int, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int, client: str
) -> tuple[float, list[float], Counter[int]]:
    if client == "raw":
        requests = [post_request(HOST, port, PATH, raw, headers) for raw, headers in bodies]
        return await load(HOST, port, requests, concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", limits=limits, timeout=30
    ) as http:

        async def one_client() -> None:
            for raw, headers in queue:
                started = time.perf_counter()
                response = await http.post(PATH, content=raw, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed, latencies, statuses


async def bench_webhooks(
    report: Report, n: int, concurrency: int, warmup: int, client: str
) -> None:
    settings = CommonSettings()
    rid = run_id()
    prefix = topic_prefix(rid)
    names = {t: prefixed(prefix, t) for t in (WHATSAPP_INBOUND, CONSENT_EVENTS, MESSAGES_REQUESTS)}
    specs = [TopicSpec(name) for name in names.values()] + [TopicSpec(dlq(names[WHATSAPP_INBOUND]))]
    secret = f"bench-secret-{rid}-{uuid.uuid4().hex}"
    group = f"bench-{rid}-inbound"
    port = free_port()
    log_dir = ROOT / ".local" / "bench-logs" / f"inbound-{rid}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "INBOUND_HTTP_PORT": str(port),
        "INBOUND_ADMIN_PORT": str(free_port()),
        "INBOUND_GROUP_ID": group,
        "WHATSAPP_APP_SECRET": secret,
        "WHATSAPP_VERIFY_TOKEN": f"bench-verify-{rid}",
        "KAFKA_TOPIC_PREFIX": prefix,
    }
    bodies = signed_bodies(warmup + n, secret.encode(), rid)
    async with private_topics(settings.kafka_bootstrap_servers, specs):
        try:
            with BenchProcess("inbound", ["bench.isolated_service", "inbound"], env, log_dir) as p:
                await p.wait_ready(f"http://{HOST}:{port}")
                await post_all(port, bodies[:warmup], concurrency, client)
                await _until_consumed(settings.kafka_bootstrap_servers, group, names, p)
                started = time.perf_counter()
                async with (
                    RssSampler(p.pid) as rss,
                    CpuShare(p.pid) as server_cpu,
                    CpuShare(os.getpid()) as client_cpu,
                ):
                    rate, latencies, statuses = await post_all(
                        port, bodies[warmup:], concurrency, client
                    )
                posted = time.perf_counter()
                await _until_consumed(settings.kafka_bootstrap_servers, group, names, p)
                consumed = time.perf_counter()
        finally:
            await delete_groups(settings.kafka_bootstrap_servers, [group])
    report.note(f"answers: {dict(statuses)} after {warmup:,} warm-up POSTs; logs in {log_dir}")
    if set(statuses) != {200}:
        raise RuntimeError(f"not every webhook was accepted: {dict(statuses)}")
    report.figure(
        f"signed webhook POSTs ({concurrency} concurrent, {client} client)", rate, "requests/s"
    )
    report.note(
        f"CPU while POSTing: the service {server_cpu.share:.0%} of a core, "
        f"the client {client_cpu.share:.0%}"
    )
    report.figure(
        "POST latency p50 (to the acknowledged produce)", percentile(latencies, 50) * 1000, "ms"
    )
    report.figure(
        "POST latency p99 (to the acknowledged produce)", percentile(latencies, 99) * 1000, "ms"
    )
    report.figure("inbound RSS peak", rss.peak_mib, "MiB")
    report.note(
        f"the reply consumer (same process) finished the {n:,} webhooks "
        f"{consumed - posted:.1f} s after the last POST was answered: "
        f"{n / (consumed - started):,.0f} webhooks/s from the first POST, HTTP load included"
    )


async def _until_consumed(
    bootstrap: str, group: str, names: dict[str, str], process: BenchProcess
) -> None:
    """Until the service's reply consumer has committed every webhook on its topic."""
    deadline = time.monotonic() + 300
    while await group_lag(bootstrap, group, names[WHATSAPP_INBOUND]):
        process.alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the reply consumer did not catch up in 300 s")
        await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="webhook POSTs, default 5,000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: bench.http_load's keep-alive client (default); httpx: httpx.AsyncClient",
    )
    parser.add_argument("--replies", type=int, help="replies classified, default 200,000")
    args = parser.parse_args(argv)
    n = sized(args.requests, 5_000, args.quick, minimum=100)
    replies = sized(args.replies, 200_000, args.quick)
    warmup = min(200, n // 10)
    report = Report(
        "bench_inbound",
        f"{n:,} signed webhook POSTs, {args.concurrency} concurrent (after {warmup} warm-up); "
        f"{replies:,} replies classified",
    )
    report.header()
    asyncio.run(bench_webhooks(report, n, args.concurrency, warmup, args.client))
    bench_classifier(report, replies)
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
