"""A check's outcome: an invariant held or failed, or a figure measured."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    held: bool | None  # None: a figure, not an invariant
    examples: list[str] = field(default_factory=list)
