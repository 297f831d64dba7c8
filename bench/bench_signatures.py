"""Signed events: what proving an event came from WhatsApp costs the readers of the log
(the projector, the rebuild, the audit) and the writers (inbound, the sender).

Per event, side by side in one run, rounds alternated: reading an event as the
projector does without a signature to check (a grant), reading one whose signature
it checks (an OptedIn), and signing one as inbound does. Pure CPU: no broker."""

import gc
import sys
import time
from collections.abc import Callable

from bench.figures import Report, base_parser, median, micros_per_call, sized
from shared.consent.authenticity import SigningKey
from shared.consent.logged_record import logged_event
from shared.contract.events import ConsentEvent
from tests.support.signing import INBOUND_KEY, TRUST
from tests.unit.domain.builders import granted, opted_in


class _Record:
    """A consent.events.v1 record as the consumer hands it over."""

    def __init__(self, event: ConsentEvent, key: SigningKey | None) -> None:
        self.value = event.model_dump_json().encode()
        self.headers = [key.header(self.value)] if key else []
        self.timestamp = int(time.time() * 1000)
        self.partition, self.offset = 0, 0


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events per round and side, default 20,000")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (median)")
    args = parser.parse_args(argv)
    n = sized(args.events, 20_000, args.quick)
    report = Report("bench_signatures", f"{n:,} events per round and side, {args.rounds} rounds")
    report.header()
    grant = _Record(granted(), None)
    opt_in = _Record(opted_in(), INBOUND_KEY)
    sides: dict[str, Callable[[], object]] = {
        "grant": lambda: logged_event(grant, TRUST),
        "opt_in": lambda: logged_event(opt_in, TRUST),
        "sign": lambda: INBOUND_KEY.header(opt_in.value),
    }
    assert not hasattr(logged_event(opt_in, TRUST), "reason"), "the signed opt-in must verify"
    results: dict[str, list[float]] = {name: [] for name in sides}
    gc.disable()
    for _ in range(args.rounds):
        for name, action in sides.items():
            results[name].append(micros_per_call(action, n))
    gc.enable()
    unsigned, verified = median(results["grant"]), median(results["opt_in"])
    report.figure("read an event, no signature to check (grant)", unsigned, "µs/event")
    report.figure("read an event, its signature checked (OptedIn)", verified, "µs/event")
    report.figure("checked / unchecked", verified / unsigned, "×")
    report.figure("sign an event (inbound, the sender)", median(results["sign"]), "µs/event")
    report.note(
        "only events claiming WhatsApp that can let messages through are checked by "
        "default (OptedIn, MarketingResumed, UserMessaged, identity events)"
    )
    report.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
