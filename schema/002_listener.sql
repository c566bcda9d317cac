-- 002: what the listener needs beyond the queue: SMTP AUTH credentials
-- (RFC 4954). Only a password hash is stored (argon2id in libsodium's
-- crypto_pwhash_str format, which carries its own salt and cost parameters), so
-- the costs can be raised later without a migration.

CREATE TABLE auth_users (
    username      text PRIMARY KEY CHECK (username <> '' AND length(username) <= 255),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
