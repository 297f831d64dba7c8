"""The audit from the ledgers (--from-ledger), without a broker: a history recorded as
the dispatcher decides it, written to in-memory ledgers as their writers write them,
read back through the audit's ledger pass. It judges as the topic replay does, proves
every partition's chain, and counts an erased person's past without judging it."""

from datetime import UTC, datetime, timedelta

from services.audit.figures import from_ledgers
from services.audit.findings import FindingKind, LedgerFindingKind, Severity
from services.audit.history import AuditPolicy, History
from services.audit.page import render_html
from services.audit.recompute import AuditResult, audit
from services.audit.replay import ReplayScope
from services.audit.report import AuditReport, Scope, build_report, console_summary
from shared.consent.state import LoggedEvent
from shared.contract.decisions import Decision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.dispatch.rules import FrequencyPolicy
from shared.ledger.entries import NOTHING
from tests.support.signing import ERASURE_INDEX
from tests.unit.audit.builders import RecordedLog, at
from tests.unit.audit.ledger_builders import LEDGERS, TOPICS, LedgerBook
from tests.unit.domain.builders import (
    OTHER_SUBJECT,
    SUBJECT,
    erasure_request,
    granted,
    opted_out,
    request,
)
from tests.unit.domain.test_people import BSUID, linked

ANNA, BORIS = SUBJECT, OTHER_SUBJECT


ERASED_AT = at(20)


def _audit(history: History, log: RecordedLog) -> AuditResult:
    """Audited as RecordedLog audits: a day on, nothing pending."""
    return audit(history, AuditPolicy(frequency=log.frequency, as_of=at(days=1)))


def clean_story(log: RecordedLog, who: str, start: float = 0) -> None:
    """A grant, a reminder sent, a STOP, its confirmation, a reminder dropped."""
    log.append(granted(occurred_at=at(start), subject=who), at(start))
    log.decide(log.ask(request(recipient=who), at(start + 1)), at(start + 1))
    stop = log.append(opted_out(occurred_at=at(start + 2), subject=who), at(start + 2))
    confirmation = request(
        OPT_OUT_CONFIRMATION, recipient=who, opt_out_event_id=stop.event.event_id
    )
    log.decide(log.ask(confirmation, at(start + 2)), at(start + 2.01))
    log.decide(log.ask(request(recipient=who), at(start + 3)), at(start + 3))


def erased_story(log: RecordedLog, who: str, start: float = 0) -> None:
    """A grant, a reminder sent, an erasure request, a reminder dropped for it."""
    log.append(granted(occurred_at=at(start), subject=who), at(start))
    log.decide(log.ask(request(recipient=who), at(start + 1)), at(start + 1))
    log.append(erasure_request(occurred_at=at(start + 2), subject=who), at(start + 2))
    log.decide(log.ask(request(recipient=who), at(start + 3)), at(start + 3))


async def written(log: RecordedLog) -> LedgerBook:
    book = LedgerBook()
    await book.write(log)
    return book


def kinds(result: AuditResult) -> list[str]:
    return [f.kind.value for f in result.findings]


def verdicts(result: AuditResult) -> list[tuple[str, object, object, bool]]:
    return [(r.request_id, r.recorded, r.recomputed, r.agrees) for r in result.recomputations]


async def test_a_clean_ledger_audits_clean_and_judges_as_the_topics_do() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    clean_story(log, BORIS, start=10)
    book = await written(log)

    history = await book.replay()
    result = _audit(history, log)

    assert result.findings == []
    assert verdicts(result) == verdicts(log.audit(as_of=at(days=1)))
    assert len(result.recomputations) == 6
    assert [(r.ledger, r.entries, r.opened, r.erased, r.unreadable) for r in history.ledgers] == [
        (LEDGERS.events, 4, 4, 0, 0),
        (LEDGERS.decisions, 6, 6, 0, 0),
    ]
    assert all(r.intact for r in history.ledgers)


async def test_an_erased_persons_past_is_counted_never_judged_and_their_requests_skipped() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    erased_story(log, BORIS, start=10)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)

    history = await book.replay()
    result = _audit(history, log)

    assert result.findings == [], "no violation, and no warning either (--strict)"
    events, decisions = history.ledgers
    assert (events.erased, decisions.erased) == (2, 2), "their grant, erasure, two decisions"
    assert (events.opened, decisions.opened) == (2, 3)
    assert history.erased_requests == 2, "their requests are in the topic, in clear"
    assert {d.decision.recipient for d in history.decisions} == {ANNA}
    assert len(result.recomputations) == 3


async def test_the_erased_are_known_by_the_suppression_list_alone() -> None:
    """A person erased before any entry of theirs was written: only consent.suppression
    tells that their request is owed no decision the ledger can show."""
    log = RecordedLog()
    clean_story(log, ANNA)
    log.ask(request(recipient=BORIS), at(5))
    book = await written(log)

    assert kinds(_audit(await book.replay(), log)) == ["request_without_decision"]
    history = await book.replay(suppressed={ERASURE_INDEX.of(BORIS)})
    assert _audit(history, log).findings == []
    assert history.erased_requests == 1


async def test_a_record_of_an_erased_past_met_late_is_counted_erased() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)
    # Appended before the erasure, copied after it: the writer keeps it empty.
    await book.event(LoggedEvent.from_log(granted(occurred_at=at(1), subject=BORIS), at(1), 1, 0))

    history = await book.replay()

    assert book.entries(LEDGERS.events)[-1].sealed == NOTHING
    assert history.ledgers[0].erased == 1
    assert history.erased_events == 0 and _audit(history, log).findings == []


async def test_a_tampered_entry_breaks_the_chain_there_and_only_there() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    book = await written(log)
    book.alter(LEDGERS.decisions, 1, facts={"decision": "dropped"})

    history = await book.replay()
    result = _audit(history, log)

    [broken] = result.findings
    assert broken.kind is LedgerFindingKind.LEDGER_CHAIN_BROKEN
    assert broken.severity is Severity.VIOLATION
    assert f"{LEDGERS.decisions} partition 0 offset 1" in broken.detail
    chain = history.ledgers[1].partitions["0"]
    assert (chain.intact, chain.breaks) == (False, [1])
    assert len(result.recomputations) == 3, "every entry that opens is still judged"


async def test_an_entry_removed_or_a_record_that_is_no_entry_breaks_the_chain() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    book = await written(log)
    removed = book.records[LEDGERS.decisions].pop(1)
    book.put(LEDGERS.events, 0, b"not an entry", at(20))

    history = await book.replay()

    found = {(f.kind, f.detail.split(":")[0]) for f in _audit(history, log).findings}
    assert (
        LedgerFindingKind.LEDGER_CHAIN_BROKEN,
        f"{LEDGERS.decisions} partition 0 offset {removed.offset + 1}",
    ) in found
    assert (
        LedgerFindingKind.LEDGER_CHAIN_BROKEN,
        f"{LEDGERS.events} partition 0 offset 2",
    ) in found
    assert history.ledgers[0].unreadable == 1


async def test_an_entry_that_does_not_open_with_its_key_is_a_violation() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    book = await written(log)
    [first, second, *_] = book.entries(LEDGERS.events)
    # Moved from another entry: bound to that entry's place, it opens nowhere else.
    book.alter(LEDGERS.events, 1, sealed=first.sealed)

    history = await book.replay()
    result = _audit(history, log)

    assert {f.kind for f in result.findings} >= {
        LedgerFindingKind.LEDGER_CHAIN_BROKEN,
        LedgerFindingKind.LEDGER_ENTRY_UNREADABLE,
    }
    [unreadable] = [
        f for f in result.findings if f.kind is LedgerFindingKind.LEDGER_ENTRY_UNREADABLE
    ]
    assert "offset 1: does not open" in unreadable.detail
    assert second.chain != first.chain
    assert history.ledgers[0].unreadable == 1


async def test_a_live_person_dispatched_without_consent_is_the_usual_violation() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    cold = log.ask(request(recipient=BORIS), at(5))
    log.record(cold, Decision.DISPATCHED, Reason.CONSENTED, at(5))
    book = await written(log)

    result = _audit(await book.replay(), log)

    assert kinds(result) == [FindingKind.DISPATCHED_WITHOUT_CONSENT.value]
    assert kinds(result) == kinds(log.audit(as_of=at(days=1)))


async def test_a_dispatch_to_a_person_after_their_erasure_is_a_violation() -> None:
    log = RecordedLog()
    erased_story(log, BORIS)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)
    # Sealed under a key made anew for them: a grant replayed by a producer, and a
    # reminder dispatched on it, as if the erasure had not stopped every send.
    log.append(granted(occurred_at=at(30), subject=BORIS), at(30))
    sent = log.ask(request(recipient=BORIS), at(31))
    log.record(sent, Decision.DISPATCHED, Reason.CONSENTED, at(31))
    dropped = log.ask(request(recipient=BORIS), at(32))
    log.record(dropped, Decision.DROPPED, Reason.OPTED_OUT, at(32))
    await book.write(log)

    history = await book.replay()
    result = _audit(history, log)

    [breach] = result.findings
    assert breach.kind is FindingKind.DISPATCHED_AFTER_OPT_OUT
    assert breach.request_id == sent.request_id
    assert "erased person" in breach.detail
    assert len(history.about_erased) == 2
    assert history.erased_events == 1 and history.erased_requests == 4


async def test_an_erased_person_who_comes_back_is_set_aside_without_a_finding() -> None:
    """After the erasure a producer replays their grant and asks again: the gate drops
    every send to them, and new keys seal these records, beside a past sealed under
    the key the erasure deleted."""
    log = RecordedLog()
    clean_story(log, ANNA)
    erased_story(log, BORIS, start=10)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)
    log.append(granted(occurred_at=at(30), subject=BORIS), at(30))
    again = log.ask(request(recipient=BORIS), at(31))
    log.record(again, Decision.DROPPED, Reason.OPTED_OUT, at(31))
    await book.write(log)

    history = await book.replay()

    assert _audit(history, log).findings == []
    events, decisions = history.ledgers
    assert (events.erased, decisions.erased) == (2, 2), "the past, under the deleted key"
    assert events.unreadable == decisions.unreadable == 0
    assert history.erased_events == 1 and history.erased_requests == 3
    assert [d.decision.request_id for d in history.about_erased] == [again.request_id]


async def test_a_person_linked_to_an_erased_one_after_the_erasure_is_set_aside() -> None:
    log = RecordedLog()
    erased_story(log, BORIS)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)
    log.append(linked(BSUID, BORIS, minutes=30), at(30))
    # The projector marks the person with the erasure: the gate drops the send.
    stopped = log.ask(request(recipient=BSUID), at(31))
    log.record(stopped, Decision.DROPPED, Reason.OPTED_OUT, at(31))
    await book.write(log)

    history = await book.replay()

    assert _audit(history, log).findings == []
    assert [d.decision.recipient for d in history.about_erased] == [BSUID]


async def test_every_break_is_found_and_what_follows_one_is_still_proved() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    clean_story(log, BORIS, start=10)
    book = await written(log)
    book.alter(LEDGERS.decisions, 1, facts={"decision": "dropped"})
    book.alter(LEDGERS.decisions, 4, facts={"reason": "consented"})

    history = await book.replay()

    chain = history.ledgers[1].partitions["0"]
    assert (chain.entries, chain.breaks) == (6, [1, 4])
    broken = [f for f in _audit(history, log).findings if f.kind.value == "ledger_chain_broken"]
    assert len(broken) == 2


async def test_the_scope_keeps_its_subjects_only() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    clean_story(log, BORIS, start=10)
    book = await written(log)

    history = await book.replay(ReplayScope(subjects=frozenset({BORIS})))

    assert {d.decision.recipient for d in history.decisions} == {BORIS}
    assert {r.recipient for r in history.requests} == {BORIS}
    assert {e.event.subject for e in history.events} == {BORIS}
    assert history.ledgers[1].entries == 6, "each ledger is still checked whole"


async def test_the_report_shows_each_ledger_and_what_was_set_aside() -> None:
    log = RecordedLog()
    clean_story(log, ANNA)
    erased_story(log, BORIS, start=10)
    book = await written(log)
    await book.erase(BORIS, erased_at=ERASED_AT)
    book.alter(LEDGERS.events, 0, facts={"type": "OptedIn"})
    history = await book.replay()

    report = _report(_audit(history, log), history)

    summary = console_summary(report)
    assert "source     the ledgers" in summary
    assert (
        f"{LEDGERS.events}: 4 entries, 2 erased (erased subject), 0 unreadable; chain BROKEN"
        in (summary)
    )
    assert f"{LEDGERS.decisions}: 5 entries, 2 erased" in summary
    assert "chain intact in 1/1 partitions" in summary
    assert "2 requests, 0 events, 0 decisions" in summary
    assert report.exit_code == 1
    html = render_html(report)
    assert "<h2>Ledgers</h2>" in html and "read from the ledgers" in html
    assert "ledger_chain_broken" in html
    dumped = report.model_dump(mode="json")
    assert dumped["scope"]["source"] == "ledgers"
    assert dumped["from_ledgers"]["ledgers"][0]["partitions"]["0"]["breaks"] == [0]


def _report(result: AuditResult, history: History) -> AuditReport:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return build_report(
        result,
        scope=Scope(
            bootstrap="localhost:9092",
            since=None,
            until=None,
            subjects=[],
            strict=False,
            confirmation_deadline_seconds=300,
            settle_seconds=60,
            source="ledgers",
        ),
        frequency=FrequencyPolicy(),
        generated_at=now,
        as_of=now - timedelta(seconds=1),
        replay_seconds=0.1,
        positions={},
        read={LEDGERS.events: 4, LEDGERS.decisions: 5, TOPICS.requests: 5},
        unreadable={},
        from_ledgers=from_ledgers(history),
    )
