-- OAuth identities, pending OAuth authorizations and password resets.
CREATE TABLE oauth_identities (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,                       -- github | google
    subject    TEXT NOT NULL,                       -- the provider's stable user id
    created_at TEXT NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX oauth_identities_user_id ON oauth_identities(user_id);

-- One row per started authorization, deleted when the callback uses it (single use).
CREATE TABLE oauth_states (
    state_hash    BLOB PRIMARY KEY NOT NULL,        -- SHA-256 of the `state` parameter
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE TABLE password_resets (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,                -- SHA-256 of the secret in the e-mailed link
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX password_resets_user_id ON password_resets(user_id);
