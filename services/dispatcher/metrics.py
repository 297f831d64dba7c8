from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("dispatcher_decisions_total", "Decisions made", ["decision", "reason"])
REPUBLISHED = Counter(
    "dispatcher_republished_total", "Stored decisions re-published after a redelivery"
)
DUPLICATES = Counter(
    "dispatcher_duplicate_requests_total", "Records repeating a decided request_id"
)
DEAD_LETTERED = Counter("dispatcher_dead_lettered_total", "Requests sent to the DLQ", ["reason"])
FENCE_WAIT = Histogram(
    "dispatcher_fence_wait_seconds",
    "Time waiting for the consent projection to reach the log end",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "dispatcher_batch_size", "Requests per batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
FAIL_CLOSED = Gauge(
    "dispatcher_fail_closed", "1 while consent state cannot be read and nothing is dispatched"
)
CONSUMER_LAG = Gauge(
    "dispatcher_consumer_lag_records", "Requests behind the log end", ["partition"]
)

# The optional sender (docs/sender.md).
SENDER_SENDS = Counter("dispatcher_sender_sends_total", "Outbound records by outcome", ["outcome"])
SENDER_PLATFORM_SIGNALS = Counter(
    "dispatcher_sender_platform_signals_total",
    "Refused sends whose error code was written to the consent log (131050, 131049, 131026)",
    ["code"],
)
SENDER_REQUEST_SECONDS = Histogram(
    "dispatcher_sender_request_seconds",
    "Cloud API request latency, per attempt",
    ["result"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SENDER_RETRIES = Counter(
    "dispatcher_sender_retries_total", "Attempts followed by a retry", ["cause"]
)
SENDER_IN_FLIGHT_FOUND = Counter(
    "dispatcher_sender_in_flight_found_total",
    "Redelivered records whose previous attempt has no recorded outcome",
)
RELEASED = Counter(
    "dispatcher_deferred_released_total",
    "Deferred requests handed back to the gate when their window opened",
)

# The retention horizon (docs/erasure.md section 7).
PARTITIONS = Counter(
    "dispatcher_partitions_total",
    "Day partitions created, dropped past the horizon, or kept past it for a waiting request",
    ["table", "action"],
)
PARTITIONS_MAINTAINED = Gauge(
    "dispatcher_partitions_maintained_timestamp_seconds",
    "When the day partitions were last maintained (alert when it falls days behind)",
)
PARTITIONS_FAILING = Gauge(
    "dispatcher_partitions_failing", "1 while the maintenance of the day partitions fails"
)
