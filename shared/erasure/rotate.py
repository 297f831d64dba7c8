"""Rewraps every data key under the active master key (docs/erasure.md, section 4),
in batches, as the owner of the database:

    python -m shared.erasure.rotate [--batch N]

Rotation: add the new key to ERASURE_MASTER_KEYS, make it ERASURE_ACTIVE_KEY, run
this, then remove the old key. The data keys themselves do not change, so no
ciphertext does. Idempotent and resumable: each batch commits on its own, and a
run after a complete one finds nothing to do. It refuses before changing anything
while a key is wrapped under a master key that configuration does not list.

Reads DATABASE_URL (the owner: no service role may update the keys) and the
ERASURE_ variables. Exit 0 with one summary line; 1 when refused; 2 when the
settings cannot be used."""

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

import asyncpg
from pydantic import ValidationError

from shared.erasure.key_store import PostgresKeyStore
from shared.erasure.master_keys import MasterKeys, UnknownMasterKeyError, UnwrapError
from shared.erasure.settings import MasterKeySettings, describe
from shared.settings import LOCAL_DATABASE_URL

DEFAULT_BATCH = 1000


class RotationRefusedError(Exception):
    """Some data keys cannot be rewrapped; those already done stay done."""


@dataclass(frozen=True)
class Rotation:
    active_id: str
    rewrapped: int
    already_active: int
    changed_meanwhile: int
    left: dict[str, int]

    def summary(self) -> str:
        left = ", ".join(f"{n:,} under {k!r}" for k, n in sorted(self.left.items()))
        return (
            f"rotate: {self.rewrapped:,} data keys rewrapped under {self.active_id!r}, "
            f"{self.already_active:,} were under it already, {self.changed_meanwhile:,} "
            "erased or replaced meanwhile; "
            + (f"left: {left}" if left else "none under another master key")
        )


async def rewrap_all(
    store: PostgresKeyStore, masters: MasterKeys, batch: int = DEFAULT_BATCH
) -> Rotation:
    before = await store.count_by_master()
    unknown = {k: n for k, n in before.items() if k not in masters.keys}
    if unknown:
        raise RotationRefusedError(
            "data keys are wrapped under master keys that ERASURE_MASTER_KEYS does not "
            f"list: {', '.join(f'{k!r} ({n:,} keys)' for k, n in sorted(unknown.items()))}; "
            "list them again until the rotation has run"
        )
    rewrapped = changed = 0
    after = ""
    while page := await store.page_not_under(masters.active_id, after, batch):
        try:
            changes = [(p, old, masters.rewrap(old)) for p, old in page]
        except (UnknownMasterKeyError, UnwrapError) as exc:
            raise RotationRefusedError(f"{exc} ({rewrapped:,} rewrapped before)") from None
        done = await store.replace(changes)
        rewrapped += done
        changed += len(changes) - done
        after = page[-1][0]
    left = {k: n for k, n in (await store.count_by_master()).items() if k != masters.active_id}
    return Rotation(masters.active_id, rewrapped, before.get(masters.active_id, 0), changed, left)


async def _rotate(url: str, masters: MasterKeys, batch: int) -> Rotation:
    conn = await asyncpg.connect(url)
    try:
        return await rewrap_all(PostgresKeyStore(conn), masters, batch)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.erasure.rotate")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="keys per transaction")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    try:
        masters = MasterKeySettings().master_key_ring()
    except ValidationError as exc:
        print(f"rotate: {describe(exc)}", file=sys.stderr)
        return 2
    url = os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL
    try:
        rotation = asyncio.run(_rotate(url, masters, args.batch))
    except RotationRefusedError as exc:
        print(f"rotate: refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"rotate: cannot rewrap the data keys: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(rotation.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
