-- Which identifiers name one person (shared/consent/people.py): every identity
-- event on the log (IdentityLinked, IdentifierChanged) adds an edge, written in
-- both directions in the transaction that records the event. The projector
-- folds the whole connected set of identifiers again whenever an event touches
-- one of them; an identifier with no edge keeps the single-subject paths.
CREATE TABLE consent.identity_links (
    identifier text NOT NULL,
    other      text NOT NULL,
    event_id   text NOT NULL,  -- the identity event that first said so
    PRIMARY KEY (identifier, other)
);
