"""Holds the dispatch rules (CONTRACT.md section 4), pure: the dispatcher and the audit run
them."""
