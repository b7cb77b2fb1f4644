-- The people who sign in at the workbench, invited by the campaign office by name, and their
-- one-time sign-in links. A link is `{invitation id}.{HMAC}`: nothing secret is stored, and a
-- link works once (`used_at`) and until it expires.
CREATE TABLE notification.people (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    role           text NOT NULL,
    team           text,
    jurisdiction   text,
    email          text,
    phone          text,
    language       text NOT NULL DEFAULT 'zh-CN',
    invited_by     text,
    invited_at     timestamptz NOT NULL,
    signed_in_at   timestamptz,
    revoked_at     timestamptz,
    revoked_reason text
);

CREATE TABLE notification.invitations (
    id              uuid PRIMARY KEY,
    person_id       uuid NOT NULL REFERENCES notification.people (id),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    -- The e-mail: sent once, retried while it is not.
    sent_at         timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text
);
CREATE INDEX invitations_unsent ON notification.invitations (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX invitations_person ON notification.invitations (person_id);
