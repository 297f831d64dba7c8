"""Scans what the services logged during a test session for the phone numbers
and message texts the tests used (clause 5: contact data is protected)."""

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

# Message bodies the tests send (tests/support/records.py, the webhooks).
MESSAGE_TEXTS = ("Reminder: the workshop starts at 10:00",)


def _written_forms(identifier: str) -> list[str]:
    """Returns the forms an identifier may be written in: a number as E.164 and as
    wa_id digits, a WhatsApp user id as it is."""
    digits = identifier.lstrip("+")
    return [identifier] if digits == identifier else [identifier, digits]


def personal_data_in_logs(
    log_dir: Path,
    written_before: Mapping[Path, int],
    phones: Iterable[str],
    texts: Iterable[str],
) -> list[str]:
    """Returns each log line written since `written_before` (file sizes) that holds
    one of the numbers (in any form) or texts, naming what it holds."""
    wanted = [form for phone in phones for form in _written_forms(phone)] + list(texts)
    if not wanted:
        return []
    # Digits only where no digit touches them: a number inside a longer one is not it.
    pattern = re.compile("|".join(rf"(?<!\d){re.escape(w)}(?!\d)" for w in wanted))
    found = []
    for path in sorted(log_dir.glob("*.log")):
        with path.open("rb") as log:
            log.seek(written_before.get(path, 0))
            for line in log.read().decode(errors="replace").splitlines():
                match = pattern.search(line)
                if match:
                    found.append(f"{path.name}: {match.group(0)!r} in {line[:300]}")
    return found
