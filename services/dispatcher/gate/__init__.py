"""The gate: one decision per send request, and the send when consent allows it."""
