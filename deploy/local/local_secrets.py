"""Completes the local stack's secrets file (.local/secrets.env): each secret missing
from it is generated and appended, and none already there changes, so a file from an
older checkout gains what newer services need and keeps what running ones use.

    python deploy/local/local_secrets.py FILE

Random values, readable by this user only: no public default exists, and the services
refuse to start without them (the webhook's secrets, the Ed25519 keys that sign and
verify events from WhatsApp, shared/consent/authenticity.py, the key of the
pseudonyms in the consent API's access records, shared/pseudonyms.py, and the key
of the pseudonyms erased people are suppressed by and the master key that wraps
their data keys, docs/erasure.md)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from shared.consent.authenticity import SigningKey
from shared.consent.platform_signals import STATUS_SIGNAL_TYPES

Generated = Callable[[dict[str, str]], str]


def _public_keys(known: dict[str, str]) -> str:
    # The sender signs only the platform's refusals: its key may sign nothing else,
    # so that it can never lift a STOP.
    inbound = SigningKey.parse(known["INBOUND_SIGNING_KEY"], "INBOUND_SIGNING_KEY")
    sender = SigningKey.parse(known["DISPATCHER_SIGNING_KEY"], "DISPATCHER_SIGNING_KEY")
    return f"{inbound.public_setting()},{sender.public_setting(STATUS_SIGNAL_TYPES)}"


# In order: a value may be derived from those before it.
SECRETS: dict[str, Generated] = {
    "WHATSAPP_APP_SECRET": lambda _: secrets.token_hex(16),
    "WHATSAPP_VERIFY_TOKEN": lambda _: secrets.token_urlsafe(24),
    "INBOUND_SIGNING_KEY": lambda _: SigningKey.generate("local-inbound").setting(),
    "DISPATCHER_SIGNING_KEY": lambda _: SigningKey.generate("local-dispatcher").setting(),
    "EVENT_VERIFY_KEYS": _public_keys,
    "PSEUDONYM_KEY": lambda _: base64.b64encode(secrets.token_bytes(32)).decode(),
    "ERASURE_INDEX_KEY": lambda _: base64.b64encode(secrets.token_bytes(32)).decode(),
    "ERASURE_MASTER_KEYS": lambda _: json.dumps(
        {"local-1": base64.b64encode(secrets.token_bytes(32)).decode()}, separators=(",", ":")
    ),
    "ERASURE_ACTIVE_KEY": lambda _: "local-1",
}


def read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def complete(path: Path) -> list[str]:
    """Appends the missing secrets; returns their names."""
    known = read(path)
    added: list[str] = []
    for name, generate in SECRETS.items():
        if not known.get(name):
            known[name] = generate(known)
            added.append(name)
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{name}={value}" for name, value in known.items()]
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("\n".join(lines) + "\n")
        temporary.replace(path)
    return added


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: local_secrets.py FILE", file=sys.stderr)
        return 2
    added = complete(Path(argv[0]))
    if added:
        print(f"[secrets] generated {', '.join(added)} into {argv[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
