"""An erasure carried out by the running consent service (docs/erasure.md, section 5):
once its grace has passed, the person's rows and keys are gone from the consent
schema, a suppression entry per identifier stays, and nothing brings sends back."""

import asyncio
import time

import httpx
import orjson
import pytest

from shared.db.pool import open_pool
from shared.erasure.data_keys import Erased
from shared.ledger.entries import check_chain, open_entry
from shared.topics import CONSENT_EVENTS, LEDGERS
from tests.conftest import ERASURE_GRACE_SECONDS
from tests.support.erased_rows import CONSENT_TABLES, rows_naming
from tests.support.eventually import eventually
from tests.support.kafka import produce
from tests.support.ledgers import data_keys, ledger_entries
from tests.support.records import consent_granted, unique_phone
from tests.support.signing import ERASURE_INDEX
from tests.support.whatsapp_world import World, message_from, reasons, user_id

pytestmark = pytest.mark.e2e


async def test_an_erased_person_leaves_only_the_fact_of_their_objection(world: World) -> None:
    phone, bsuid = unique_phone(), user_id()
    await world.post(message_from("hello", phone=phone, bsuid=bsuid))  # links the two
    await world.grant(phone)
    await world.until(phone, "opted_in", bsuid)
    assert reasons(await world.decide(phone)) == [("dispatched", "consented")]
    await world.post(message_from("STOP", phone=phone, bsuid=bsuid))
    await world.until(phone, "opted_out")

    asked = time.monotonic()
    async with httpx.AsyncClient(base_url=world.consent) as http:
        answer = await http.post(f"/v1/subjects/{bsuid}/erasure", json={"reason": "DSR-9"})
    assert answer.status_code == 202, answer.text
    request = answer.json()["event_id"]
    await world.until_state(phone, lambda s: s["erasure_event_id"] == request)

    pool = await open_pool(world.stack.database_url)
    try:
        assert (await rows_naming(pool, phone, bsuid))["events"] >= 4
        carried_out = await eventually(
            lambda: pool.fetchrow(
                "SELECT * FROM consent.erasures WHERE erasure_event_id = $1", request
            ),
            lambda row: row is not None,
            timeout=ERASURE_GRACE_SECONDS + 60,
        )
        assert time.monotonic() - asked >= ERASURE_GRACE_SECONDS - 5, "not before the grace"
        assert carried_out["identifiers"] == 2
        assert carried_out["events_deleted"] >= 4
        assert carried_out["keys_deleted"] >= 1, "the ledgers sealed their records"
        assert await rows_naming(pool, phone, bsuid) == dict.fromkeys(CONSENT_TABLES, 0)
        person = [ERASURE_INDEX.of(phone), ERASURE_INDEX.of(bsuid)]
        assert not await pool.fetchval(
            "SELECT count(*) FROM consent.data_keys WHERE pseudonym = ANY($1::text[])", person
        )
        suppressed = await pool.fetch(
            "SELECT pseudonym FROM consent.suppression WHERE erasure_event_id = $1", request
        )
        assert {r["pseudonym"] for r in suppressed} == {
            ERASURE_INDEX.of(phone),
            ERASURE_INDEX.of(bsuid),
        }
        # In the ledgers their entries are all there, chained, and none opens: no
        # clear identifier, and no key left.
        keys = data_keys(pool)
        for ledger in LEDGERS:
            entries = await ledger_entries(world.stack.kafka_bootstrap, ledger)
            theirs = [e for _, _, e in entries if set(e.pseudonyms) & set(person)]
            assert theirs, f"{ledger} holds the person's records"
            for partition in {p for p, _, _ in entries}:
                assert check_chain((o, e) for p, o, e in entries if p == partition).intact
            assert not any(phone in e.model_dump_json() for _, _, e in entries)
            found = await keys.for_reading({e.pseudonyms[0] for e in theirs})
            assert all(open_entry(e, found) == Erased(e.pseudonyms[0]) for e in theirs)
    finally:
        await pool.close()

    state = await world.state(phone)
    assert (state["status"], state["erasure_event_id"]) == ("unknown", None)
    [refused] = await world.decide(phone)
    assert (refused["decision"], refused["reason"]) == ("dropped", "no_consent")

    # A producer sending the person's old grant again cannot bring sends back: their
    # objection outlives their data.
    # The projector marks the state it folds with the erasure (opted_out, naming it)
    # and the job's next round, within a second here, erases it again (no_consent).
    await produce(world.stack.kafka_bootstrap, CONSENT_EVENTS, [(phone, consent_granted(phone))])
    await asyncio.sleep(1)
    [still] = await world.decide(phone)
    assert (still["decision"], still["reason"], still["consent_event_id"]) in {
        ("dropped", "opted_out", request),
        ("dropped", "no_consent", None),
    }
    confirmations = [
        v
        for v in map(orjson.loads, (r.value for r in world.decisions.records))
        if v["recipient"] == phone and v["purpose"] == "opt_out_confirmation"
    ]
    assert len(confirmations) == 1, "their STOP was confirmed once, before the erasure"
