"""The examples of CONTRACT.md sections 2, 3 and 4 (docs/contract.md), verbatim:
what the parsers must accept and the generated schemas must validate."""

from typing import Any

CONTRACT_GRANT: dict[str, Any] = {
    "event_id": "0b7f8a4e-8d3c-4d55-9a53-3c1f0f0e2b10",
    "type": "ConsentGranted",
    "subject": "+79161234567",
    "occurred_at": "2026-11-27T10:00:00Z",
    "source": "event_registration",
    "purposes": ["event_reminder", "registration_confirmation"],
    "evidence": {"registration_id": "R-1042", "form_url": "https://example.org/e/42"},
    "expires_at": None,
}
CONTRACT_REQUEST: dict[str, Any] = {
    "request_id": "c1e4...",
    "recipient": "+79161234567",
    "purpose": "event_reminder",
    "message": {"type": "text", "text": {"body": "Reminder: the workshop starts at 10:00"}},
    "requested_at": "2026-11-27T09:00:00Z",
    "opt_out_event_id": None,
}
CONTRACT_DECISION: dict[str, Any] = {
    "request_id": "c1e4...",
    "recipient": "+79161234567",
    "purpose": "event_reminder",
    "decision": "dispatched",
    "reason": "consented",
    "consent_event_id": "0b7f8a4e-...",
    "decided_at": "2026-11-27T09:00:00.120Z",
}
