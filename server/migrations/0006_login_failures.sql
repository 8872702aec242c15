-- Failed admin logins still inside the login throttle's window, so that a
-- restart (or a crash loop) does not reset a password-guessing limit. One row
-- a failure; rows older than the window are deleted, and the table is capped.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT,           -- the name tried; NULL once a good login cleared the account's count
    address TEXT NOT NULL,  -- the client's address key: IPv4, or the IPv6 /64 with the rest zero
    at_ms INTEGER NOT NULL  -- when, Unix time in milliseconds
);
CREATE INDEX login_failures_by_account ON login_failures (account);
CREATE INDEX login_failures_by_time ON login_failures (at_ms);
