"""A fault-injection run (`make chaos`, `python -m chaos`): the three services on a
stack of their own (3 Kafka brokers, one PostgreSQL), driven by another system's
traffic and a hostile producer while processes, brokers and the database are
killed, paused and crashed; afterwards the invariants are checked from the outside
only (the topics, the consent API, the audit and the rebuild) and printed as a
table. docs/reliability.md says what each invariant means."""
