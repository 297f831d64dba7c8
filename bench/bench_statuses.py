"""STOP-to-enforced latency, p50 and p99, with and without status webhooks arriving at
Meta's pace, side by side in one run.

    python -m bench.bench_statuses [--quick] [--stops N] [--status-rate N]

Meta sends three statuses per message (sent, delivered, read): a business number
at its ceiling of 1,000 messages/s brings about 3,000 status webhooks/s. Inbound
reads them all (for the identity links and the platform's signals they carry), on
the same topic as the replies, so a STOP may queue behind them. This measures
what that costs: the real inbound and consent services (each a process of its own
through `bench.isolated_service`, on private topics) and the real PostgreSQL.

A STOP is a text webhook from a fresh number that was granted consent, produced to
`whatsapp.inbound.v1` as a gateway would; it is *enforced* once its subject's row in
`consent.subjects` says `opted_out`, which is what the dispatcher's gate reads
after its fence (the fence itself adds one end-offset read, not measured here).
The STOPs go one at a time, a fixed pause apart, first with no other traffic, then
while a producer writes status webhooks (each one status, for a pool of
recipients, with their user ids) at `--status-rate` per second.
"""

import asyncio
import sys
import time
import uuid
from random import Random

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from bench.figures import Report, base_parser, percentile, sized
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
from shared.kafka.security import security_options
from shared.settings import CommonSettings
from shared.topics import CONSENT_EVENTS, MESSAGES_REQUESTS, WHATSAPP_INBOUND, dlq
from tests.support.records import consent_granted
from tests.support.webhooks import text_webhook, webhook_body

HOST = "127.0.0.1"
PAUSE = 0.05  # between STOPs: a sample every ~50 ms plus its own latency
STATUSES = ("sent", "delivered", "read")


def status_webhook(rng: Random, recipients: list[tuple[str, str]]) -> bytes:
    wa_id, user_id = recipients[rng.randrange(len(recipients))]
    return orjson.dumps(
        webhook_body(
            {
                "statuses": [
                    {
                        "id": f"wamid.{rng.getrandbits(64):016x}",
                        "status": STATUSES[rng.randrange(3)],
                        "timestamp": str(int(time.time())),
                        "recipient_id": wa_id,
                        "recipient_user_id": user_id,
                    }
                ]
            }
        )
    )


class StatusLoad:
    """Produces status webhooks at `rate` per second, in 10 ms slices, until stopped."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, rate: int, seed: int) -> None:
        self.producer, self.topic, self.rate = producer, topic, rate
        self.rng = Random(seed)
        self.recipients = [
            (f"7916{self.rng.randrange(10_000_000):07d}", f"RU.{self.rng.getrandbits(60)}")
            for _ in range(1_000)
        ]
        self.sent = 0
        self.running = True

    async def run(self) -> None:
        started = time.perf_counter()
        while self.running:
            due = int((time.perf_counter() - started) * self.rate)
            while self.sent < due:
                value = status_webhook(self.rng, self.recipients)
                key = orjson.loads(value)["entry"][0]["changes"][0]["value"]["statuses"][0]
                await self.producer.send(self.topic, value, key=key["recipient_id"].encode())
                self.sent += 1
            await asyncio.sleep(0.01)
        self.elapsed = time.perf_counter() - started


async def stop_latencies(
    producer: AIOKafkaProducer, pool: asyncpg.Pool, names: dict[str, str], n: int, rid: str
) -> list[float]:
    """Grants n fresh numbers, then sends each a STOP and waits until it is enforced."""
    rng = Random(f"{rid}-{n}")
    phones = [f"+7916{rng.randrange(10_000_000):07d}" for _ in range(n)]
    for phone in phones:
        grant = consent_granted(phone, "event_reminder")
        await producer.send(names[CONSENT_EVENTS], orjson.dumps(grant), key=phone.encode())
    await producer.flush()
    await _until(pool, phones, "opted_in", timeout=60)
    latencies = []
    for i, phone in enumerate(phones):
        body = text_webhook(phone[1:], "STOP", message_id=f"wamid.bench.{rid}.{n}.{i}")
        started = time.perf_counter()
        await producer.send_and_wait(
            names[WHATSAPP_INBOUND], orjson.dumps(body), key=phone[1:].encode()
        )
        await _until(pool, [phone], "opted_out", timeout=60)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(PAUSE)
    return latencies


async def _until(pool: asyncpg.Pool, phones: list[str], status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = await pool.fetchval(
            "SELECT count(*) FROM consent.subjects WHERE subject = ANY($1) AND status = $2",
            phones,
            status,
        )
        if found == len(phones):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(phones) - found} of {len(phones)} not {status} in {timeout}s")
        await asyncio.sleep(0.002)


async def bench(report: Report, stops: int, rate: int) -> None:
    settings = CommonSettings()
    bootstrap = settings.kafka_bootstrap_servers
    rid = run_id()
    prefix = topic_prefix(rid)
    names = {t: prefixed(prefix, t) for t in (WHATSAPP_INBOUND, CONSENT_EVENTS, MESSAGES_REQUESTS)}
    specs = [TopicSpec(name) for name in names.values()]
    specs += [TopicSpec(dlq(names[WHATSAPP_INBOUND])), TopicSpec(dlq(names[CONSENT_EVENTS]))]
    groups = {"inbound": f"bench-{rid}-inbound", "consent": f"bench-{rid}-consent"}
    log_dir = ROOT / ".local" / "bench-logs" / f"statuses-{rid}"
    log_dir.mkdir(parents=True, exist_ok=True)
    common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    inbound_env = {
        **common,
        "INBOUND_HTTP_PORT": str(free_port()),
        "INBOUND_ADMIN_PORT": str(free_port()),
        "INBOUND_GROUP_ID": groups["inbound"],
        "WHATSAPP_APP_SECRET": f"bench-secret-{rid}-{uuid.uuid4().hex}",
        "WHATSAPP_VERIFY_TOKEN": f"bench-verify-{rid}-{uuid.uuid4().hex}",
    }
    consent_port = free_port()
    consent_env = {
        **common,
        "DATABASE_URL": settings.database_url,
        "CONSENT_HTTP_PORT": str(consent_port),
        "CONSENT_ADMIN_PORT": str(free_port()),
        "CONSENT_GROUP_ID": groups["consent"],
    }
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **security_options()
    )
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    async with private_topics(bootstrap, specs):
        await producer.start()
        try:
            with (
                BenchProcess(
                    "inbound", ["bench.isolated_service", "inbound"], inbound_env, log_dir
                ) as inbound,
                BenchProcess(
                    "consent", ["bench.isolated_service", "consent"], consent_env, log_dir
                ) as consent,
            ):
                await inbound.wait_ready(f"http://{HOST}:{inbound_env['INBOUND_HTTP_PORT']}")
                await consent.wait_ready(f"http://{HOST}:{consent_port}")
                await stop_latencies(producer, pool, names, 5, rid + "-warm")
                quiet = await stop_latencies(producer, pool, names, stops, rid + "-quiet")
                load = StatusLoad(producer, names[WHATSAPP_INBOUND], rate, seed=7)
                loading = asyncio.create_task(load.run())
                await asyncio.sleep(2)  # the load reaches its pace first
                busy = await stop_latencies(producer, pool, names, stops, rid + "-busy")
                load.running = False
                await loading
                lag = await group_lag(bootstrap, groups["inbound"], names[WHATSAPP_INBOUND])
                inbound.alive()
                consent.alive()
        finally:
            await producer.stop()
            await pool.close()
            await delete_groups(bootstrap, list(groups.values()))
    for label, values in (("without statuses", quiet), (f"with {rate:,} statuses/s", busy)):
        report.figure(f"STOP to enforced p50, {label}", percentile(values, 50) * 1000, "ms")
        report.figure(f"STOP to enforced p99, {label}", percentile(values, 99) * 1000, "ms")
    report.figure(
        "p99 ratio, with statuses / without", percentile(busy, 99) / percentile(quiet, 99), "x"
    )
    report.note(
        f"status webhooks produced: {load.sent:,} in {load.elapsed:.1f} s "
        f"({load.sent / load.elapsed:,.0f}/s); inbound's lag when the load stopped: {lag:,} "
        f"records; logs in {log_dir}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, help="STOPs per phase, default 400")
    parser.add_argument("--status-rate", type=int, default=3_000, help="status webhooks/s")
    args = parser.parse_args(argv)
    stops = sized(args.stops, 400, args.quick, minimum=20)
    report = Report(
        "bench_statuses",
        f"{stops} STOPs without, then with {args.status_rate:,} status webhooks/s",
    )
    report.header()
    asyncio.run(bench(report, stops, args.status_rate))
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
