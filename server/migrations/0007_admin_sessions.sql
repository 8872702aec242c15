-- Admin sessions, one row each: the session record as JSON and when it ends.
-- Replaces the `tower_sessions` table of the session store used before; its
-- sessions (30 minutes idle at most) end with the upgrade.
DROP TABLE IF EXISTS tower_sessions;
CREATE TABLE admin_sessions (
    id TEXT PRIMARY KEY NOT NULL,  -- the cookie's session id
    record TEXT NOT NULL,          -- tower-sessions' record (data and expiry) as JSON
    expires_at INTEGER NOT NULL    -- Unix time in seconds
);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);
