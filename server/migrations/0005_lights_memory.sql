-- What the light controller must not forget in a restart or a crash.

-- Whether an audited action did what was asked; entries from before this
-- column read their result's old "ok" prefix.
ALTER TABLE light_audit ADD COLUMN ok INTEGER NOT NULL DEFAULT 1;
UPDATE light_audit SET ok = (result LIKE 'ok%');

-- Each outlet's recent real switches, for its relay guard: a restart (or a
-- crash loop) must not open a way to switch the relays faster.
CREATE TABLE relay_switches (
    outlet TEXT NOT NULL,
    at_ms INTEGER NOT NULL     -- Unix time in milliseconds
);
CREATE INDEX relay_switches_by_outlet ON relay_switches (outlet, at_ms);

-- Outlets in the middle of a flash, and the state each must go back to; a
-- process that dies mid-flash puts them back when it starts again.
CREATE TABLE light_flashes (
    outlet TEXT PRIMARY KEY NOT NULL,
    back_to INTEGER NOT NULL,
    source TEXT NOT NULL       -- who flashed it, as in light_audit
);
