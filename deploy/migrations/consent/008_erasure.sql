-- Carrying out an erasure (docs/erasure.md, section 5): what survives a person and the
-- one path that may delete them from the append-only tables.
--
-- consent.suppression: one row per identifier of an erased person, keyed by its
-- pseudonym (HMAC-SHA256 under ERASURE_INDEX_KEY), never the identifier. It is the
-- fact of the objection, kept under GDPR Art. 17(3)(b) and (e): the projector marks
-- any later state of that identifier as erased (no send) and ignores the records
-- appended before the erasure that a lagging consumer or a rebuild meets again.
CREATE TABLE IF NOT EXISTS consent.suppression (
    pseudonym         text PRIMARY KEY,
    erasure_event_id  text        NOT NULL,  -- the ErasureRequested carried out
    requested_at      timestamptz NOT NULL,
    erased_at         timestamptz NOT NULL DEFAULT now()
);

-- One row per erasure carried out, with what it removed: the answer to "what did you
-- do with my request", without a word about the person.
CREATE TABLE IF NOT EXISTS consent.erasures (
    erasure_event_id  text PRIMARY KEY,
    requested_at      timestamptz NOT NULL,
    erased_at         timestamptz NOT NULL DEFAULT now(),
    identifiers       integer     NOT NULL,
    events_deleted    integer     NOT NULL,
    keys_deleted      integer     NOT NULL
);

-- The erasure job looks for requests whose grace has passed; those rows are few.
CREATE INDEX IF NOT EXISTS subjects_erasure_requested_idx ON consent.subjects (subject)
    WHERE (state ->> 'erasure_event_id') IS NOT NULL;

-- consent.events stays append-only for everyone, its owner included, except inside
-- consent.erase_person below. The setting is only a switch of the trigger: no service
-- role holds DELETE on the table (004), so setting it elsewhere deletes nothing.
CREATE OR REPLACE FUNCTION consent.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('consent.erasing', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Erases one person in one transaction: their suppression rows, then their events,
-- state, links and data keys. Runs as the owner (SECURITY DEFINER) so that the
-- service's role needs EXECUTE only, never DELETE on the log. Idempotent: called
-- again for the same request, it erases what reached the person's identifiers since
-- and says it was not the first time. Returns what this call deleted.
CREATE OR REPLACE FUNCTION consent.erase_person(
    p_identifiers text[],
    p_pseudonyms text[],
    p_erasure_event_id text,
    p_requested_at timestamptz
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '10s'
AS $$
DECLARE
    events_deleted integer;
    keys_deleted integer;
    recorded integer;
BEGIN
    IF coalesce(array_length(p_identifiers, 1), 0) = 0
        OR array_length(p_identifiers, 1) <> array_length(p_pseudonyms, 1) THEN
        RAISE EXCEPTION 'erase_person: one pseudonym per identifier, at least one';
    END IF;
    -- Waits for a projector transaction in flight and holds the next one back until
    -- this commits: it then reads the suppression rows before it inserts, and so
    -- never writes the person's older records back.
    LOCK TABLE consent.events IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO consent.suppression (pseudonym, erasure_event_id, requested_at)
    SELECT unnest(p_pseudonyms), p_erasure_event_id, p_requested_at
    ON CONFLICT (pseudonym) DO NOTHING;
    PERFORM set_config('consent.erasing', 'on', true);
    DELETE FROM consent.events WHERE subject = ANY (p_identifiers);
    GET DIAGNOSTICS events_deleted = ROW_COUNT;
    PERFORM set_config('consent.erasing', 'off', true);
    DELETE FROM consent.subjects WHERE subject = ANY (p_identifiers);
    -- Links are stored both ways: each has a row whose identifier is the person's.
    DELETE FROM consent.identity_links
    WHERE identifier = ANY (p_identifiers) OR other = ANY (p_identifiers);
    DELETE FROM consent.data_keys WHERE pseudonym = ANY (p_pseudonyms);
    GET DIAGNOSTICS keys_deleted = ROW_COUNT;
    INSERT INTO consent.erasures
        (erasure_event_id, requested_at, identifiers, events_deleted, keys_deleted)
    VALUES (p_erasure_event_id, p_requested_at, array_length(p_identifiers, 1),
            events_deleted, keys_deleted)
    ON CONFLICT (erasure_event_id) DO NOTHING;
    GET DIAGNOSTICS recorded = ROW_COUNT;
    RETURN jsonb_build_object(
        'first_time', recorded > 0,
        'identifiers', array_length(p_identifiers, 1),
        'events_deleted', events_deleted,
        'keys_deleted', keys_deleted
    );
END $$;

REVOKE ALL ON FUNCTION consent.erase_person(text[], text[], text, timestamptz) FROM PUBLIC;

DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM (VALUES
        -- The erasure job runs in the consent service, as its projector's role.
        ('consent_projector', 'GRANT EXECUTE ON FUNCTION consent.erase_person(text[], text[], text, timestamptz) TO %I'),
        ('consent_projector', 'GRANT SELECT ON consent.suppression, consent.erasures TO %I'),
        ('consent_api',       'GRANT SELECT ON consent.suppression, consent.erasures TO %I'),
        ('consent_audit',     'GRANT SELECT ON consent.suppression, consent.erasures TO %I')
    ) AS grants(role, statement)
    LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = g.role) THEN
            EXECUTE format(g.statement, g.role);
        END IF;
    END LOOP;
END $$;
