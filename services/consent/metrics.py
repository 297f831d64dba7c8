from prometheus_client import Counter, Gauge

EVENTS_APPLIED = Counter("consent_events_applied_total", "Events applied to the projection")
EVENTS_REJECTED = Counter("consent_events_rejected_total", "Events sent to the DLQ", ["reason"])
EVENT_ID_CONFLICTS = Counter(
    "consent_event_id_conflicts_total",
    "Events whose event_id was recorded first with another payload (dead-lettered)",
)
SUBJECTS_REFOLDED = Counter(
    "consent_subjects_refolded_total", "Subject states folded again from their whole history"
)
SUBJECTS_FOLDED_ON = Counter(
    "consent_subjects_folded_on_total",
    "Subject states folded on from the stored state (every new event sorted after it)",
)
PROJECTION_LAG = Gauge(
    "consent_projection_lag_records", "Records behind the log end", ["partition"]
)
EVENTS_ERASED = Counter(
    "consent_events_erased_total",
    "Records of an erased person, appended before the erasure, met again and dropped",
)
ERASURES = Counter("consent_erasures_total", "Erasures carried out (one per person)")
ERASURES_FAILING = Gauge(
    "consent_erasures_failing", "1 while the erasure job's last round failed, else 0"
)
ERASURES_DUE = Gauge(
    "consent_erasures_due", "People whose erasure is due and not yet carried out (last round)"
)
LEDGER_ENTRIES = Counter("consent_ledger_entries_total", "Entries written to a ledger", ["ledger"])
LEDGER_SKIPPED = Counter(
    "consent_ledger_skipped_total",
    "Source records not copied to their ledger (dead-lettered, or not a decision)",
    ["ledger"],
)
LEDGER_BORN_ERASED = Counter(
    "consent_ledger_born_erased_total",
    "Entries of an erased person's past, sealed under a key nobody keeps",
    ["ledger"],
)
