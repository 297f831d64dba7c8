"""`python -m services.audit` runs the replayable audit (policy clause 6.3, contract section 8).

Exit status: 0 clean (warnings allowed unless --strict); 1 a violation found (or,
with --strict, any finding); 2 usage error, or the broker/topics (with --from-ledger,
the data keys) cannot be read."""

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.audit import figures
from services.audit.history import AuditPolicy
from services.audit.ledger_read import FromLedger, LedgerKeysError, ledger_source
from services.audit.page import write_report
from services.audit.recompute import audit
from services.audit.replay import Replayed, ReplayError, ReplayScope, Source, Topics, replay
from services.audit.report import AuditReport, Scope, build_report, console_summary
from shared.consent.authenticity import Trust
from shared.db.roles import AUDIT_URL
from shared.dispatch.quiet_hours import QuietHoursPolicy
from shared.dispatch.rules import FrequencyPolicy
from shared.dispatch.timing import ALWAYS_OPEN
from shared.erasure.settings import ErasureSettings, describe
from shared.identifiers import mask_identifier, normalize_identifier
from shared.phone import InvalidPhoneNumberError
from shared.settings import (
    LOCAL_DATABASE_URL,
    CommonSettings,
    FrequencySettings,
    QuietHoursSettings,
    TrustSettings,
)

EXIT_CLEAN, EXIT_VIOLATION, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class AuditOptions:
    bootstrap: str
    trust: Trust  # whose signatures prove an event came from WhatsApp
    out: Path | None = Path("audit-report")
    since: datetime | None = None
    until: datetime | None = None
    subjects: frozenset[str] | None = None
    frequency: FrequencyPolicy = field(default_factory=FrequencyPolicy)
    # In-process runs judge by no quiet hours unless told; the command line reads
    # DISPATCHER_QUIET_HOURS, as the dispatcher does.
    quiet_hours: QuietHoursPolicy = ALWAYS_OPEN
    confirmation_deadline: timedelta = timedelta(minutes=5)
    settle: timedelta = timedelta(seconds=60)
    ack_allowance: timedelta = timedelta(seconds=1)
    strict: bool = False
    progress: bool | None = None
    # With --from-ledger, only the requests topic is read of these.
    topics: Topics = field(default_factory=Topics)
    # Set: the consent events and the decisions are read from the ledgers.
    from_ledger: FromLedger | None = None


@dataclass(frozen=True)
class AuditRun:
    report: AuditReport
    replayed: Replayed
    paths: tuple[Path, Path] | None


async def run_audit(options: AuditOptions) -> AuditRun:
    """Replays, recomputes and reports: the whole audit, for the CLI, the demo and tests."""
    if options.from_ledger is None:
        return await _run_audit(options, options.topics)
    async with ledger_source(options.from_ledger, options.topics) as source:
        return await _run_audit(options, source)


async def _run_audit(options: AuditOptions, source: Source) -> AuditRun:
    generated_at = datetime.now(UTC)
    scope = ReplayScope(
        subjects=options.subjects,
        since=options.since,
        until=options.until,
        context=options.frequency.window,
    )
    replayed = await replay(
        options.bootstrap, scope, source, trust=options.trust, progress=options.progress
    )
    policy = AuditPolicy(
        frequency=options.frequency,
        quiet_hours=options.quiet_hours,
        as_of=replayed.as_of,
        since=options.since,
        until=options.until,
        confirmation_deadline=options.confirmation_deadline,
        settle=options.settle,
        ack_allowance=options.ack_allowance,
    )
    result = audit(replayed.history, policy)
    report = build_report(
        result,
        scope=Scope(
            bootstrap=options.bootstrap,
            since=options.since,
            until=options.until,
            subjects=sorted(mask_identifier(s) for s in options.subjects or ()),
            strict=options.strict,
            confirmation_deadline_seconds=options.confirmation_deadline.total_seconds(),
            settle_seconds=options.settle.total_seconds(),
            source="topics" if options.from_ledger is None else "ledgers",
        ),
        frequency=options.frequency,
        generated_at=generated_at,
        as_of=replayed.as_of,
        replay_seconds=replayed.seconds,
        positions=replayed.positions,
        read=dict(replayed.read),
        unreadable=dict(replayed.history.unreadable),
        from_ledgers=figures.from_ledgers(replayed.history),
    )
    paths = write_report(report, options.out) if options.out is not None else None
    return AuditRun(report, replayed, paths)


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset (Z or +hh:mm)")
    return value


def _subject(text: str) -> str:
    try:
        return normalize_identifier(text)
    except InvalidPhoneNumberError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    frequency = FrequencySettings()  # the dispatcher's limits, with their env overrides
    p = argparse.ArgumentParser(
        prog="python -m services.audit",
        description="Replay consent.events.v1, messages.requests.v1 and messages.decisions.v1 "
        "(or, with --from-ledger, the ledgers and messages.requests.v1), recompute every "
        "decision with the services' own fold and rules, and report (policy clause 6.3). "
        "Exit 0 clean, 1 violation, 2 error.",
    )
    p.add_argument("--since", type=_moment, help="RFC 3339; check from this moment")
    p.add_argument("--until", type=_moment, help="RFC 3339; check up to (excluding) this moment")
    p.add_argument(
        "--subject", type=_subject, action="append", help="only this phone number (repeatable)"
    )
    p.add_argument("--out", type=Path, default=Path("audit-report"), help="report folder")
    p.add_argument("--frequency-limit", type=int, default=frequency.frequency_limit)
    p.add_argument(
        "--frequency-window-seconds", type=int, default=frequency.frequency_window_seconds
    )
    p.add_argument(
        "--bootstrap",
        default=CommonSettings().kafka_bootstrap_servers,
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)",
    )
    p.add_argument(
        "--confirmation-deadline-seconds",
        type=float,
        default=300.0,
        help="an opt-out's confirmation later than this is a finding (default 5 min)",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=60.0,
        help="a request younger than this without a decision is pending, not a finding",
    )
    p.add_argument(
        "--ack-allowance-seconds",
        type=float,
        default=1.0,
        help="an OptedOut appended less than this before a decision that did not see it "
        "may not have been acknowledged yet: not a breach (default 1 s)",
    )
    p.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    p.add_argument(
        "--from-ledger",
        action="store_true",
        help="read the consent events and the decisions from consent.ledger.v1 and "
        "messages.decisions.ledger.v1 (never trimmed) instead of their topics; needs "
        "ERASURE_MASTER_KEYS, ERASURE_ACTIVE_KEY, ERASURE_INDEX_KEY and AUDIT_DATABASE_URL "
        "(else DATABASE_URL) to read consent.data_keys and consent.suppression",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def options_from(argv: Sequence[str] | None = None) -> AuditOptions:
    p = parser()
    args = p.parse_args(argv)
    if args.frequency_limit < 1 or args.frequency_window_seconds < 1:
        p.error("--frequency-limit and --frequency-window-seconds must be at least 1")
    if args.since and args.until and args.since >= args.until:
        p.error("--since must be before --until")
    try:
        trust = TrustSettings().trust()
    except ValidationError as exc:
        p.error("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()))
    return AuditOptions(
        bootstrap=args.bootstrap,
        trust=trust,
        out=args.out,
        since=args.since,
        until=args.until,
        subjects=frozenset(args.subject) if args.subject else None,
        frequency=FrequencyPolicy(
            limit=args.frequency_limit, window=timedelta(seconds=args.frequency_window_seconds)
        ),
        quiet_hours=QuietHoursSettings().quiet_hours_policy(),
        confirmation_deadline=timedelta(seconds=args.confirmation_deadline_seconds),
        settle=timedelta(seconds=args.settle_seconds),
        ack_allowance=timedelta(seconds=args.ack_allowance_seconds),
        strict=args.strict,
        progress=args.progress,
        from_ledger=_from_ledger(p) if args.from_ledger else None,
    )


def _from_ledger(p: argparse.ArgumentParser) -> FromLedger:
    try:
        erasure = ErasureSettings()
    except ValidationError as exc:
        p.error(f"--from-ledger: {describe(exc)}")
    # The audit's read-only role when set: it may read the key table and the
    # suppression list, nothing else of the consent schema's secrets.
    url = os.environ.get(AUDIT_URL) or os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL
    return FromLedger(database_url=url, erasure=erasure)


def main(argv: Sequence[str] | None = None) -> int:
    options = options_from(argv)  # argparse exits 2 on a usage error
    # A one-shot process holding millions of long-lived records: the cyclic
    # collector would rescan them again and again for nothing (10-15 % of the time).
    gc.disable()
    # aiokafka logs each failed connection attempt itself; one line from us says it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        run = asyncio.run(run_audit(options))
    except LedgerKeysError as exc:
        print(f"audit: cannot open the ledgers: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (KafkaError, ReplayError, OSError) as exc:
        print(f"audit: cannot read the log on {options.bootstrap}: {exc!r}", file=sys.stderr)
        return EXIT_ERROR
    print(console_summary(run.report, run.paths))
    return run.report.exit_code
