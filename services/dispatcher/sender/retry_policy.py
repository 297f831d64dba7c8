"""Holds the sender's rules, pure: which Cloud API answers are retried, how long to wait
before the next attempt, and what is recorded of an answer (docs/sender.md)."""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from shared.backoff import RetryPolicy


class AnswerClass(StrEnum):
    """Sorts an answer of the Cloud API: sent, worth retrying, or refused for good."""

    SENT = "sent"
    RETRY = "retry"
    FAIL = "fail"


def classify(status: int | None) -> AnswerClass:
    """None is a transport failure (connect, timeout, reset): retried like a 5xx."""
    if status is None or status == 429 or status >= 500:
        return AnswerClass.RETRY
    return AnswerClass.SENT if 200 <= status < 300 else AnswerClass.FAIL


def retry_cause(status: int | None) -> str:
    return "transport" if status is None else "429" if status == 429 else "5xx"


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0

    def delay(
        self, attempt: int, retry_after: float | None, draw: Callable[[], float] = random.random
    ) -> float:
        """Returns the wait after the attempt-th attempt (1-based): the server's Retry-After
        when it gave one (bounded, so one answer cannot stall the consumer), else
        the consumers' full-jitter backoff, which keeps many senders from retrying
        in step."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        return RetryPolicy(self.backoff_base, self.backoff_max).delay(attempt - 1, draw)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Reads a Retry-After value as RFC 9110 has it: delay-seconds or an HTTP-date;
    anything else is ignored."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def provider_message_id(payload: Any) -> str | None:
    try:
        message_id = payload["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return message_id if isinstance(message_id, str) else None


def graph_error(status: int | None, payload: Any, text: str) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        data = error.get("error_data")
        notes = [
            f"code {error.get('code')}",
            str(data.get("details") or "") if isinstance(data, dict) else "",
            f"fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else "",
        ]
        return f"HTTP {status}: {error.get('message')} ({', '.join(n for n in notes if n)})"
    return f"HTTP {status}: {text[:500]}"


def graph_error_code(payload: Any) -> str | None:
    """Returns the Cloud API's error code of a refused call (`error.code`), as digits."""
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if isinstance(code, int | str) and str(code).isdigit() else None
