"""The keys the tests sign with, as inbound signs (shared/consent/authenticity.py): fixed,
so that a record produced by a test and one written by a service it started verify
with the same keyring. Test keys only: they protect nothing."""

from typing import Any

import orjson

from shared.consent.authenticity import SIGNED_SOURCES, Keyring, SigningKey, Trust
from shared.consent.platform_signals import STATUS_SIGNAL_TYPES
from shared.pseudonyms import Pseudonymizer

INBOUND_KEY = SigningKey.parse("test-inbound:" + "aW5ib3VuZC10ZXN0LWtleS0wMDAwMDAwMDAwMDAwMDA=")
DISPATCHER_KEY = SigningKey.parse(
    "test-dispatcher:" + "ZGlzcGF0Y2hlci10ZXN0LWtleS0wMDAwMDAwMDAwMDA="
)
# A key nobody trusts: what a forger holds.
FORGER_KEY = SigningKey.parse("test-inbound:" + "Zm9yZ2VyLXRlc3Qta2V5LTAwMDAwMDAwMDAwMDAwMDA=")

# As make writes them (deploy/local/local_secrets.py): the sender's key may sign only
# the platform's refusals.
VERIFY_KEYS = f"{INBOUND_KEY.public_setting()},{DISPATCHER_KEY.public_setting(STATUS_SIGNAL_TYPES)}"
TRUST = Trust(Keyring.parse(VERIFY_KEYS))

# The key of the pseudonyms in the consent API's access records (shared/pseudonyms.py).
PSEUDONYM_KEY = "cHNldWRvbnltLXRlc3Qta2V5LTAwMDAwMDAwMDAwMDA="
PSEUDONYMS = Pseudonymizer.parse(PSEUDONYM_KEY)

# The key of the pseudonyms erased people are suppressed by (docs/erasure.md).
ERASURE_INDEX_KEY = "ZXJhc3VyZS1pbmRleC10ZXN0LWtleS0wMDAwMDAwMDA="
ERASURE_INDEX = Pseudonymizer.parse(ERASURE_INDEX_KEY, "ERASURE_INDEX_KEY")

# The master key that wraps the data keys of the services the tests start.
ERASURE_MASTER_KEYS = '{"test-1": "bWFzdGVyLXRlc3Qta2V5LTAwMDAwMDAwMDAwMDAwMDA="}'

# The keys the services the tests start are given.
SIGNING_ENV = {
    "INBOUND_SIGNING_KEY": INBOUND_KEY.setting(),
    "DISPATCHER_SIGNING_KEY": DISPATCHER_KEY.setting(),
    "EVENT_VERIFY_KEYS": VERIFY_KEYS,
    "PSEUDONYM_KEY": PSEUDONYM_KEY,
    "ERASURE_INDEX_KEY": ERASURE_INDEX_KEY,
    "ERASURE_MASTER_KEYS": ERASURE_MASTER_KEYS,
    "ERASURE_ACTIVE_KEY": "test-1",
}


def signed_headers(value: bytes, key: SigningKey = INBOUND_KEY) -> list[tuple[str, bytes]]:
    """Inbound's signature when the value is an event that claims WhatsApp, else none."""
    try:
        body: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    if isinstance(body, dict) and body.get("source") in SIGNED_SOURCES:
        return [key.header(value)]
    return []
