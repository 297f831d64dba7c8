"""The report: a JSON file and one HTML file that parses, opens offline and shows
the figures (decisions by reason, latency, messages per recipient per day) and
every finding."""

import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.audit.findings import FindingKind
from services.audit.page import write_report
from services.audit.report import AuditReport, Scope, build_report, console_summary
from shared.contract.decisions import Decision, Reason
from shared.contract.purposes import OPT_OUT_CONFIRMATION
from shared.dispatch.rules import FrequencyPolicy
from tests.unit.audit.builders import RecordedLog, at
from tests.unit.domain.builders import OTHER_SUBJECT, granted, opted_out, request

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


class StrictParser(HTMLParser):
    """Checks that every element is closed in order, and collects text and tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def history_with_findings() -> RecordedLog:
    log = RecordedLog()
    grant = log.append(granted(occurred_at=at(0)), at(0))
    for minute in range(1, 6):
        log.decide(log.ask(request(), at(minute)), at(minute))
    stop = log.append(opted_out(occurred_at=at(10)), at(10))
    confirmation = request(OPT_OUT_CONFIRMATION, opt_out_event_id=stop.event.event_id)
    log.decide(log.ask(confirmation, at(10)), at(10) + timedelta(milliseconds=120))
    log.decide(log.ask(request(), at(11)), at(11))
    rogue = log.ask(request(request_id="rogue-<1>"), at(12))
    log.record(
        rogue, Decision.DISPATCHED, Reason.CONSENTED, at(12), consent_event_id=grant.event.event_id
    )
    cold = log.ask(request(recipient=OTHER_SUBJECT), at(13))
    log.record(cold, Decision.DISPATCHED, Reason.CONSENTED, at(13))
    return log


def report_of(log: RecordedLog) -> AuditReport:
    result = log.audit()
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
        ),
        frequency=FrequencyPolicy(),
        generated_at=datetime(2026, 11, 28, tzinfo=UTC),
        as_of=datetime(2026, 11, 28, tzinfo=UTC),
        replay_seconds=0.5,
        positions={"consent.events.v1": {"0": (0, 2)}},
        read={"consent.events.v1": 2, "messages.requests.v1": 9, "messages.decisions.v1": 9},
        unreadable={},
    )


@pytest.fixture(scope="module")
def report() -> AuditReport:
    return report_of(history_with_findings())


@pytest.fixture(scope="module")
def written(report: AuditReport, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_report(report, tmp_path_factory.mktemp("audit") / "out")


@pytest.fixture(scope="module")
def page(written: tuple[Path, Path]) -> StrictParser:
    parser = StrictParser()
    parser.feed(written[1].read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_the_report_files_are_written(written: tuple[Path, Path]) -> None:
    json_path, html_path = written
    assert (json_path.name, html_path.name) == ("audit.json", "audit.html")
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_html_parses_with_every_element_closed(page: StrictParser) -> None:
    assert page.errors == []
    assert page.stack == []
    assert page.tags[0] == "html"


def test_the_html_is_self_contained(written: tuple[Path, Path], page: StrictParser) -> None:
    raw = written[1].read_text(encoding="utf-8")
    assert "<script" not in raw
    urls = [v for k, v in page.attributes if k in {"src", "href"}]
    assert urls == []
    external = [v for k, v in page.attributes if v and "://" in v and k != "xmlns"]
    assert external == []


def test_the_html_has_the_three_charts_as_inline_svg(page: StrictParser) -> None:
    assert page.tags.count("svg") == 3
    assert page.tags.count("rect") > 10
    text = " ".join(page.text)
    assert "Decisions by reason" in text
    assert "Opt-out to enforcement latency" in text
    assert "Consented messages per recipient per day" in text
    assert "limit 20 per 86400s" in text


def test_the_html_has_the_figures(report: AuditReport, page: StrictParser) -> None:
    text = " ".join(page.text)
    assert report.decisions_by_reason == {
        "consented": 7,
        "opt_out_confirmation": 1,
        "opted_out": 1,
    }
    for reason, count in report.decisions_by_reason.items():
        assert reason in text
        assert str(count) in text
    assert report.latency.p50 == pytest.approx(0.12)
    assert "120 ms" in text  # opt-out to enforcement p50, p95 and max
    assert report.frequency.max_per_day == 6
    assert "max consented per recipient per day" in text


def test_the_html_lists_every_finding_with_its_names(
    report: AuditReport, page: StrictParser
) -> None:
    text = " ".join(page.text)
    kinds = {f.kind for f in report.findings}
    assert kinds == {FindingKind.DISPATCHED_AFTER_OPT_OUT, FindingKind.DISPATCHED_WITHOUT_CONSENT}
    for f in report.findings:
        assert f.kind.value in text
        assert f.request_id is not None and f.request_id in text
        assert f.recipient is not None and f.recipient in text
    assert "rogue-<1>" in text  # escaped in the markup, intact as text
    assert "+79161234567" not in text  # phone numbers only masked


def test_the_json_carries_the_same_figures_and_findings(
    report: AuditReport, written: tuple[Path, Path]
) -> None:
    data = json.loads(written[0].read_text(encoding="utf-8"))
    assert data["decisions_by_reason"] == report.decisions_by_reason
    assert data["violations"] == 2
    assert data["exit_code"] == 1
    assert data["latency"]["p50"] == pytest.approx(0.12)
    assert {f["kind"] for f in data["findings"]} == {
        "dispatched_after_opt_out",
        "dispatched_without_consent",
    }
    assert AuditReport.model_validate(data) == report


def test_the_console_summary_gives_the_key_figures(report: AuditReport) -> None:
    summary = console_summary(report)
    assert "2 violations" in summary
    assert "p50 120 ms" in summary
    assert "VIOLATIONS FOUND (exit 1)" in summary


def test_a_clean_history_reports_clean_with_exit_code_zero() -> None:
    log = RecordedLog()
    log.append(granted(occurred_at=at(0)), at(0))
    log.decide(log.ask(request(), at(1)), at(1))
    clean = report_of(log)
    assert (clean.violations, clean.warnings, clean.exit_code) == (0, 0, 0)
    assert "clean (exit 0)" in console_summary(clean)
