"""Defines what every consume loop counts, labelled by the consumer's name."""

from prometheus_client import Counter

POISON_RECORDS = Counter(
    "consumer_poison_records_total",
    "Records that failed on their own with healthy dependencies, dead-lettered",
    ["consumer"],
)
BATCH_SPLITS = Counter(
    "consumer_batch_splits_total",
    "Failed batches split in halves to find the records that fail on their own",
    ["consumer"],
)
