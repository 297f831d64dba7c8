-- consent.erase_person (008) trusted its arguments: the projector's role, which holds
-- EXECUTE, could have deleted anyone's events and data keys. It now erases only what
-- a recorded request covers:
-- - the request's ErasureRequested is in consent.events, for one of the identifiers
--   given, and every identifier given is that subject or linked to it; or
-- - the request was carried out before (its event erased with the person) and every
--   identifier given has a state that names it: records that reached the person
--   since, which the projector marked (shared/consent/suppression.py).
-- The lock is waited for 2 seconds, not 10: a queued erasure holds the projector's
-- next batch back meanwhile, and the job simply tries again next round.
CREATE OR REPLACE FUNCTION consent.erase_person(
    p_identifiers text[],
    p_pseudonyms text[],
    p_erasure_event_id text,
    p_requested_at timestamptz
) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    requested text;
    outside text;
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
    SELECT subject INTO requested FROM consent.events
    WHERE event_id = p_erasure_event_id AND type = 'ErasureRequested';
    IF requested IS NOT NULL THEN
        WITH RECURSIVE connected(identifier) AS (
            SELECT requested
            UNION
            SELECT l.other FROM consent.identity_links l
            JOIN connected c ON l.identifier = c.identifier
        )
        SELECT i INTO outside FROM unnest(p_identifiers) AS i
        WHERE i NOT IN (SELECT identifier FROM connected) LIMIT 1;
        IF outside IS NOT NULL THEN
            RAISE EXCEPTION 'erase_person: an identifier given is not the person of request %',
                p_erasure_event_id USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSE
        SELECT i INTO outside FROM unnest(p_identifiers) AS i
        WHERE NOT EXISTS (
            SELECT FROM consent.subjects s
            WHERE s.subject = i AND s.state ->> 'erasure_event_id' = p_erasure_event_id
        ) LIMIT 1;
        IF outside IS NOT NULL THEN
            RAISE EXCEPTION 'erase_person: request % is not recorded, and not every identifier given names it',
                p_erasure_event_id USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    INSERT INTO consent.suppression (pseudonym, erasure_event_id, requested_at, erased_at)
    SELECT unnest(p_pseudonyms), p_erasure_event_id, p_requested_at, clock_timestamp()
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

-- The owner could always drop the trigger; the switch only spares the erasure the
-- trigger's refusal. Said plainly, where 008's comment said "its owner included".
COMMENT ON FUNCTION consent.refuse_change() IS
    'Refuses UPDATE, DELETE and TRUNCATE on consent.events, except a DELETE inside '
    'consent.erase_person (the consent.erasing switch). No service role holds DELETE; '
    'the owner, who could drop this trigger anyway, can use the switch too.';
