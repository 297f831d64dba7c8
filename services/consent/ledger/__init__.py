"""The consent service's ledgers (docs/erasure.md, section 3): every accepted event and
every decision, sealed per person, chained per partition, never trimmed."""
