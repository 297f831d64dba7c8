"""Crypto-shredding's keys (docs/erasure.md, sections 3 and 4): personal fields are
sealed with a data key per identifier, kept wrapped in `consent.data_keys`, and
deleting the key erases them wherever they were copied.

- `settings`: ERASURE_MASTER_KEYS, ERASURE_ACTIVE_KEY, ERASURE_INDEX_KEY and the
  cache's bounds, refused at start when unusable;
- `master_keys`: the key-encryption keys that wrap and unwrap data keys;
- `data_keys`: the values (a data key, a wrapped one, an erased identifier);
- `field_cipher`: sealing and opening a field, bound to its record and field name;
- `key_store`: the table, over asyncpg;
- `key_cache`: what a service uses: keys for writing (created on first sight) and
  for reading (or Erased), cached for a bounded time;
- `rotate`: rewrapping every key under the active master key.

Pseudonyms are shared/pseudonyms.py's HMAC under ERASURE_INDEX_KEY."""
