-- Tweets that reached a poller: the first instance to insert an ID fires it,
-- so two pollers on one database never fire a tweet twice.
CREATE TABLE tweets (
    id TEXT PRIMARY KEY NOT NULL,  -- the X tweet ID
    author TEXT NOT NULL,          -- username, or the author ID when not given
    claimed_at TEXT NOT NULL,      -- RFC 3339, UTC
    claimed_by TEXT NOT NULL       -- which instance claimed it
);
