-- The light controller: its audit log, daily schedules, and the state of the
-- simulated PDU's outlets (real PDUs are read back instead).

CREATE TABLE light_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,          -- RFC 3339, UTC
    source TEXT NOT NULL,      -- admin:NAME, schedule, tweet:ID
    outlet TEXT NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL
);

CREATE TABLE light_schedules (
    outlet TEXT PRIMARY KEY NOT NULL,
    on_time TEXT NOT NULL,     -- HH:MM or HH:MM:SS, local time in the configured zone
    off_time TEXT NOT NULL
);

CREATE TABLE simulated_outlets (
    pdu TEXT NOT NULL,
    outlet_index INTEGER NOT NULL,
    is_on INTEGER NOT NULL,
    PRIMARY KEY (pdu, outlet_index)
);
