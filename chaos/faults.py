"""The injector: faults at random (seeded), one at a time, each healed, then a probe
request for a consented recipient that tells when the system decides again, then
a pause before the next one."""

import asyncio
import random
import time
from collections.abc import Awaitable, Iterator

from chaos.history import Fault, History, RequestKind
from chaos.poison import Hostile
from chaos.services import NAMES, Services
from chaos.stack import ChaosStack, StackError
from chaos.tails import LiveTails
from chaos.traffic import Traffic
from shared.topics import CONSENT_EVENTS

# A service fault's target is drawn per fault, so that one round of five faults
# covers every kind, and a run of a few minutes a few of each.
KINDS: tuple[str, ...] = ("kill9", "sigstop", "broker_kill", "pg_crash", "poison_burst")
TARGETS = {
    "broker_kill": "the leader of a consent.events.v1 partition",
    "pg_crash": "postgres",
    "poison_burst": "hostile producer",
}
# Past aiokafka's default session.timeout.ms (10 s): the group evicts the member.
SIGSTOP_SECONDS = 15.0
# About how long each takes with its heal and probe, so that none is started that
# cannot end before the traffic stops.
EXPECTED_SECONDS = {
    "kill9": 15,
    "sigstop": 30,
    "broker_kill": 45,
    "pg_crash": 25,
    "poison_burst": 8,
}
READY_TIMEOUT = 120.0
PROBE_TIMEOUT = 180.0


class Injector:
    def __init__(
        self,
        rng: random.Random,
        stack: ChaosStack,
        services: Services,
        traffic: Traffic,
        hostile: Hostile,
        tails: LiveTails,
        history: History,
        probe_subjects: list[str],
    ) -> None:
        self.rng = rng
        self.stack = stack
        self.services = services
        self.traffic = traffic
        self.hostile = hostile
        self.tails = tails
        self.history = history
        self.probe_subjects = probe_subjects
        self.healing: asyncio.Task[None] | None = None

    def plan(self, until: float) -> Iterator[tuple[str, str]]:
        """Every kind once in a shuffled round, then another round, while a fault
        can still end before `until`; a kind that no longer fits is skipped."""
        while True:
            kinds = list(KINDS)
            self.rng.shuffle(kinds)
            fitted = False
            for kind in kinds:
                if time.time() + EXPECTED_SECONDS[kind] > until:
                    continue
                fitted = True
                yield kind, TARGETS.get(kind) or self.rng.choice(NAMES)
            if not fitted:
                return

    async def run(self, until: float, warmup: float = 10.0) -> None:
        await asyncio.sleep(warmup)
        for kind, target in self.plan(until):
            fault = Fault(kind, target, time.time())
            self.history.faults.append(fault)
            try:
                await self.inject(fault)
            except StackError as exc:
                fault.note = f"injection failed: {str(exc).splitlines()[0]}"
            # The probe goes out as soon as the heal is under way: how long the
            # component takes to come back is part of the recovery measured.
            await self.probe(fault)
            if self.healing is not None:
                try:
                    await self.healing
                except StackError as exc:
                    fault.note = f"heal failed: {str(exc).splitlines()[0]}"
                self.healing = None
            print(f"[chaos] {_described(fault, self.history.started_at)}", flush=True)
            await asyncio.sleep(self.rng.uniform(3, 8))

    async def inject(self, fault: Fault) -> None:
        """Breaks, holds, and takes the healing action (`healed_at`); what waits for
        the component to answer again (`back_at`) is left running in `healing`."""
        if fault.kind in ("kill9", "sigstop"):
            await self._service(fault)
        elif fault.kind == "broker_kill":
            await self._broker(fault)
        elif fault.kind == "pg_crash":
            await self._postgres(fault)
        else:
            await self.hostile.burst()
            fault.healed_at = fault.back_at = time.time()

    async def _service(self, fault: Fault) -> None:
        service = self.services[fault.target]
        paused = fault.kind == "sigstop"
        try:
            if paused:
                service.pause()
                await asyncio.sleep(SIGSTOP_SECONDS)
            else:
                service.kill9()
                await asyncio.sleep(self.rng.uniform(1, 4))
        finally:
            fault.healed_at = time.time()
            if paused:
                service.resume()
            else:
                service.start()

        async def ready() -> None:
            if await service.wait_ready(READY_TIMEOUT):
                fault.back_at = time.time()
            else:
                fault.note = f"not ready {READY_TIMEOUT:.0f}s after the heal"

        self.healing = asyncio.create_task(ready())

    async def _broker(self, fault: Fault) -> None:
        partition = self.rng.randrange(3)
        node = await self.stack.consent_events_leader(CONSENT_EVENTS, partition)
        fault.target = f"broker {node} (leads consent.events.v1:{partition})"
        try:
            await self.stack.kafka("kill", str(node))
            await asyncio.sleep(self.rng.uniform(5, 10))
        finally:
            fault.healed_at = time.time()
            self.healing = asyncio.create_task(
                self._back(fault, self.stack.kafka("start", timeout=300))
            )

    async def _postgres(self, fault: Fault) -> None:
        try:
            await self.stack.postgres("crash")
            await asyncio.sleep(self.rng.uniform(3, 8))
        finally:
            fault.healed_at = time.time()
            self.healing = asyncio.create_task(self._back(fault, self.stack.postgres("start")))

    @staticmethod
    async def _back(fault: Fault, restart: Awaitable[str]) -> None:
        await restart
        fault.back_at = time.time()

    async def probe(self, fault: Fault) -> None:
        """A request for a consented recipient, sent right after the heal."""
        if fault.healed_at is None:
            return
        subject = self.probe_subjects[(len(self.history.faults) - 1) % len(self.probe_subjects)]
        sent = await self.traffic.request(subject, "event_reminder", RequestKind.PROBE)
        fault.probe_request_id = sent.request_id
        if sent.acked_at is not None:
            fault.decided_again_at = await self.tails.decision_of(sent.request_id, PROBE_TIMEOUT)


def _described(fault: Fault, run_started: float) -> str:
    healed = f"healed after {fault.healed_at - fault.started_at:.1f}s" if fault.healed_at else ""
    again = fault.recovery_seconds
    decided = (
        f", decides again {again:.1f}s after the heal" if again is not None else ", NO decision"
    )
    return (
        f"fault {fault.kind} {fault.target} at {fault.started_at - run_started:.0f}s: "
        f"{healed}{decided} {fault.note}".rstrip()
    )
