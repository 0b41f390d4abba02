-- 007: who may sign in (accounts, their sessions) and what everyone did (audit_events).

-- Built-in accounts. With AUTH_MODE=oidc an account without a password names the role
-- of an identity from the company's provider (matched by e-mail).
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored lower-case and trimmed by the application: one account per address.
    email text COLLATE "C" NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- argon2id hash (argon2-cffi's encoded form); NULL: signs in through OIDC only.
    password_hash text,
    disabled_at timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until timestamptz,
    last_sign_in_at timestamptz,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_email_key UNIQUE (email),
    CONSTRAINT accounts_email_lower CHECK (email = lower(btrim(email)) AND email <> '')
);
CREATE TRIGGER accounts_updated_at BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Dashboard sessions of built-in accounts. The browser keeps a random token in a cookie;
-- only its sha256 is stored, so a copy of this table signs nobody in.
CREATE TABLE account_sessions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    token_sha256 text COLLATE "C" NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_sessions_token_key UNIQUE (token_sha256)
);
CREATE INDEX account_sessions_open_idx ON account_sessions (account_id)
    WHERE ended_at IS NULL;
CREATE TRIGGER account_sessions_updated_at BEFORE UPDATE ON account_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Append-only record of every sign-in, every action on money or personal data, every
-- account change. Rows are never updated or deleted: the trigger refuses it, whoever
-- asks, and the application's role is granted SELECT and INSERT only.
CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL CHECK (actor <> ''),
    action text NOT NULL CHECK (action <> ''),
    subject text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_actor_at_idx ON audit_events (actor, at);
CREATE INDEX audit_events_action_at_idx ON audit_events (action, at);
CREATE INDEX audit_events_subject_idx ON audit_events (subject COLLATE "C" text_pattern_ops);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
