"""Defines the wire models of the public contract (CONTRACT.md sections 2-4)."""
