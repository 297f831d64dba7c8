"""Ledger entries (shared/ledger/entries.py): sealed per person, chained per partition,
checked without a key, unreadable once the key is gone."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.erasure.data_keys import DataKey, Erased
from shared.erasure.field_cipher import UnreadableFieldError
from shared.ledger.entries import (
    GENESIS,
    LedgerEntry,
    Sealable,
    check_chain,
    open_entry,
    seal_entry,
)

AT = datetime(2026, 12, 4, 10, 0, 0, 123000, tzinfo=UTC)
ANNA, BORIS = "a" * 64, "b" * 64
KEYS = {ANNA: DataKey.generate(), BORIS: DataKey.generate()}


def item(offset: int, content: bytes = b'{"subject": "+79161234567"}') -> Sealable:
    return Sealable(
        kind="event",
        partition=1,
        offset=offset,
        log_time=AT + timedelta(seconds=offset),
        facts={"type": "ConsentGranted", "authenticated": True, "occurred_at": None},
        identifiers=("+79161234567",),
        content=content,
    )


def chained(n: int, owner: str = ANNA) -> list[LedgerEntry]:
    entries, head = [], GENESIS
    for offset in range(n):
        entry = seal_entry(item(offset), (owner,), KEYS[owner], head)
        entries.append(entry)
        head = entry.chain
    return entries


def test_an_entry_opens_with_its_persons_key_only() -> None:
    [entry] = chained(1)
    assert open_entry(entry, KEYS) == b'{"subject": "+79161234567"}'
    assert b"79161234567" not in entry.model_dump_json().encode(), "no clear identifier"
    with pytest.raises(UnreadableFieldError):
        open_entry(entry, {ANNA: KEYS[BORIS]})
    assert open_entry(entry, {ANNA: Erased(ANNA)}) == Erased(ANNA)
    assert open_entry(entry, {}) == Erased(ANNA)


def test_an_entry_written_after_its_person_was_erased_holds_nothing() -> None:
    entry = seal_entry(item(0), (ANNA,), None, GENESIS)
    assert open_entry(entry, KEYS) == Erased(ANNA)
    assert check_chain([(0, entry)]).intact


def test_the_chain_survives_the_topic_and_breaks_where_altered() -> None:
    entries = [LedgerEntry.model_validate_json(e.model_dump_json()) for e in chained(5)]
    checked = check_chain(enumerate(entries))
    assert (checked.intact, checked.entries, checked.head) == (True, 5, entries[-1].chain)

    moved = entries[2].model_copy(update={"sealed": entries[3].sealed})
    assert check_chain(enumerate([*entries[:2], moved, *entries[3:]])).broken_at == 2
    assert check_chain(enumerate(entries[:2] + entries[3:])).broken_at == 2, "one removed"
    relabelled = entries[1].model_copy(update={"facts": {"type": "OptedOut"}})
    assert check_chain(enumerate([entries[0], relabelled])).broken_at == 1


def test_content_moved_to_another_entry_does_not_open() -> None:
    first, second = chained(2)
    swapped = second.model_copy(update={"sealed": first.sealed})
    with pytest.raises(UnreadableFieldError):
        open_entry(swapped, KEYS)


@given(st.lists(st.binary(max_size=64), min_size=1, max_size=8), st.integers(0, 7))
def test_any_single_change_is_found_by_the_chain(contents: list[bytes], at: int) -> None:
    head, entries = GENESIS, []
    for offset, content in enumerate(contents):
        entry = seal_entry(item(offset, content), (ANNA,), KEYS[ANNA], head)
        entries.append(entry)
        head = entry.chain
    assert check_chain(enumerate(entries)).intact
    at %= len(entries)
    forged = entries[at].model_copy(update={"offset": entries[at].offset + 100})
    assert check_chain(enumerate([*entries[:at], forged, *entries[at + 1 :]])).broken_at == at
