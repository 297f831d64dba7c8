"""Benchmarks on the real broker and database: ratios measured side by side in one run.

`python -m bench` runs them all (ARCHITECTURE.md section 6); each `bench.bench_*`
module also runs alone. Everything a benchmark creates (databases, topics, consumer
groups, processes) is private to the run and removed at its end, also on failure.
"""
