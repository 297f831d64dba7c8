"""Prints the EVENT_SIGNATURES_FROM setting for a log written before its events were
signed: consent.events.v1's end offsets now, as `<partition>:<offset>` pairs.

    python -m shared.consent.signing_cutover [--bootstrap HOST:PORT]

Run it once, when signing is deployed: after the old inbound and dispatcher are
stopped and before the signing ones start. Give the line it prints to the readers
(consent, rebuild, audit): every unsigned record before these positions was written
under the old rules and counts as it did; every later one must be signed
(shared/consent/authenticity.py). Never run it on a log that signing already
guards: the forgeries refused since would count again on a rebuild. A record before
the positions that carries a signature is still judged by it."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from shared.kafka.clients import end_offsets, offsets_reader
from shared.topics import CONSENT_EVENTS


def setting(ends: dict[int, int]) -> str:
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(ends.items()))


async def current_ends(bootstrap: str, topic: str = CONSENT_EVENTS) -> dict[int, int]:
    consumer = offsets_reader(bootstrap)
    await consumer.start()
    try:
        return await end_offsets(consumer, topic)
    finally:
        await consumer.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    args = parser.parse_args(argv)
    try:
        ends = asyncio.run(current_ends(args.bootstrap))
    except Exception as exc:  # a CLI: say what failed rather than print a traceback
        print(f"could not read the end offsets of {CONSENT_EVENTS}: {exc}", file=sys.stderr)
        return 1
    print(f"EVENT_SIGNATURES_FROM={setting(ends)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
