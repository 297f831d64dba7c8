"""Answers "who read this person's consent data, and when" from consent.access_log
(services/consent/access.py), for a data protection officer or a subject's request.

    python -m services.consent.access_log IDENTIFIER [--since RFC3339]

Reads with AUDIT_DATABASE_URL (the read-only role) when set, else DATABASE_URL, and
finds the reads by the identifier's pseudonym under PSEUDONYM_KEY: the log itself
holds no number. Exit 0 with one line per read (none: a line saying so), 2 on error."""

import argparse
import asyncio
import os
import sys
from datetime import datetime

import asyncpg

from shared.db.roles import AUDIT_URL
from shared.identifiers import mask_identifier, normalize_identifier
from shared.phone import InvalidPhoneNumberError
from shared.pseudonyms import InvalidPseudonymKeyError, Pseudonymizer
from shared.settings import LOCAL_DATABASE_URL


async def reads_of(url: str, pseudonym: str, since: datetime | None) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(
            await conn.fetch(
                "SELECT at, principal, scope FROM consent.access_log"
                " WHERE $1 = ANY(identifiers) AND ($2::timestamptz IS NULL OR at >= $2)"
                " ORDER BY at, id",
                pseudonym,
                since,
            )
        )
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.consent.access_log")
    p.add_argument("identifier", help="a phone number or a WhatsApp user id (BSUID)")
    p.add_argument("--since", type=datetime.fromisoformat, help="RFC 3339 with offset")
    args = p.parse_args(argv)
    try:
        subject = normalize_identifier(args.identifier)
        pseudonyms = Pseudonymizer.parse(os.environ.get("PSEUDONYM_KEY", ""))
    except (InvalidPhoneNumberError, InvalidPseudonymKeyError) as exc:
        print(f"access_log: {exc}", file=sys.stderr)
        return 2
    url = os.environ.get(AUDIT_URL) or os.environ.get("DATABASE_URL") or LOCAL_DATABASE_URL
    try:
        rows = asyncio.run(reads_of(url, pseudonyms.of(subject), args.since))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"access_log: cannot read consent.access_log: {type(exc).__name__}", file=sys.stderr)
        return 2
    who = mask_identifier(subject)
    if not rows:
        print(f"no recorded reads of {who}")
    for row in rows:
        print(f"{row['at'].isoformat()}  {row['principal']}  {row['scope']}  {who}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
