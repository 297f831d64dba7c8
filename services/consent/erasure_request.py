"""Records an erasure request from the operator's command line, as the consent API's
`POST /v1/subjects/{identifier}/erasure` does (services/consent/erasure_requests.py).

    python -m services.consent.erasure_request IDENTIFIER --requested-by NAME [--reason TEXT]
    make erase SUBJECT=IDENTIFIER REQUESTED_BY=NAME [REASON=TEXT]

Prints the event_id once the event is durable on consent.events.v1. Exits with 2,
saying why, when the request would not be applied (an unusable identifier, text over
the event's limits), before anything is published; with 1 when it could not be
written."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from services.consent.erasure_requests import erasure_requested, publish_event
from shared.contract.events import ERASURE_CLI
from shared.kafka.clients import durable_producer
from shared.rejection import RejectedError


async def record(bootstrap: str, identifier: str, requested_by: str, reason: str | None) -> str:
    # Built and checked before connecting: a refused request never reaches the broker.
    erasure = erasure_requested(identifier, ERASURE_CLI, requested_by, reason, datetime.now(UTC))
    producer = durable_producer(bootstrap)
    await producer.start()
    try:
        await publish_event(producer, erasure)
    finally:
        await producer.stop()
    return erasure.event.event_id


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record a person's erasure request.")
    parser.add_argument(
        "identifier", help="any identifier of the person: a phone number or a BSUID"
    )
    parser.add_argument("--requested-by", required=True, help="who asks: kept with the request")
    parser.add_argument("--reason", help="why, e.g. the ticket of the person's request")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    args = parser.parse_args(argv)
    try:
        event_id = asyncio.run(
            record(args.bootstrap, args.identifier, args.requested_by, args.reason)
        )
    except RejectedError as exc:
        print(f"refused ({exc.reason}): {exc.detail}", file=sys.stderr)
        return 2
    except Exception as exc:  # a CLI: say what failed rather than print a traceback
        print(f"could not record the erasure request: {exc}", file=sys.stderr)
        return 1
    print(f"erasure requested: event {event_id}; nothing more is sent to this person")
    return 0


if __name__ == "__main__":
    sys.exit(main())
