"""Looks for an erased person in the consent schema: every row's text, every table."""

from typing import Any

CONSENT_TABLES = ("events", "subjects", "identity_links", "data_keys", "suppression", "erasures")


async def rows_naming(pool: Any, *identifiers: str) -> dict[str, int]:
    """Counts, per table of the consent schema, the rows whose text holds an identifier."""
    found = {}
    for table in CONSENT_TABLES:
        where = " OR ".join(f"t::text LIKE '%' || ${i + 1} || '%'" for i in range(len(identifiers)))
        found[table] = await pool.fetchval(
            f"SELECT count(*) FROM consent.{table} t WHERE {where}", *identifiers
        )
    return found
