"""The replayable audit (policy clause 6.3, CONTRACT.md section 8): replay the log,
recompute every decision with the services' own fold and rules, report findings."""
