-- Admin accounts: a name and an argon2 hash (PHC string, salt included).
-- Sessions live in `tower_sessions`, which the session store creates itself.
CREATE TABLE accounts (
    username      TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
