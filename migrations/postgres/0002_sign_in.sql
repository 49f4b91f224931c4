-- OAuth identities, pending OAuth authorizations and password resets.
CREATE TABLE oauth_identities (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,                       -- github | google
    subject    TEXT NOT NULL,                       -- the provider's stable user id
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX oauth_identities_user_id ON oauth_identities(user_id);

-- One row per started authorization, deleted when the callback uses it (single use).
CREATE TABLE oauth_states (
    state_hash    BYTEA PRIMARY KEY,                -- SHA-256 of the `state` parameter
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE password_resets (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE,               -- SHA-256 of the secret in the e-mailed link
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_resets_user_id ON password_resets(user_id);
