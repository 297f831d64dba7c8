"""Computes consent state as a pure fold of a subject's events: one function for the
projector, the rebuild, the dispatcher's rules and the audit."""
