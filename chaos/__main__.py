"""`python -m chaos --minutes N [--seed S]`: a fault-injection run on a stack of its
own; prints the invariants' table. Exit 0 when every invariant held, 1 when one
failed, 2 when the run itself could not be made (the stack did not start, ...)."""

import argparse
import asyncio
import logging
import random
import signal
import sys

from chaos.run import Options, run
from chaos.stack import StackError


async def _main(options: Options) -> int:
    # SIGTERM (a CI job cancelled, pytest's timeout) ends the run like Ctrl-C: the
    # stack is stopped on the way out.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(options)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic and faults (10)")
    parser.add_argument("--seed", type=int, default=None, help="the faults' and traffic's seed")
    parser.add_argument("--rate", type=float, default=20.0, help="send requests a second (20)")
    parser.add_argument(
        "--drain-timeout", type=float, default=240.0, help="seconds allowed for the drain (240)"
    )
    args = parser.parse_args()
    if args.minutes <= 0 or args.rate <= 0:
        parser.error("--minutes and --rate must be positive")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"[chaos] seed {seed}", flush=True)
    # aiokafka logs every failed connection during a broker fault: expected here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_main(Options(args.minutes, seed, args.rate, args.drain_timeout)))
    except (StackError, RuntimeError) as exc:
        print(f"[chaos] the run could not be made: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[chaos] interrupted: the stack was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
