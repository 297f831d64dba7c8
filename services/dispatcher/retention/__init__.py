"""Keeps the dispatcher's tables within their retention horizon (docs/erasure.md section 7)."""
