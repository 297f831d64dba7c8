"""The replayable audit (policy clause 6.3, CONTRACT.md section 8) replays the log,
recomputes every decision with the services' own fold and rules, and reports findings."""
