-- Notification owns the recipients of each jurisdiction, the notices sent to them and every
-- delivery attempt.

CREATE TABLE notification.recipients (
    code            text PRIMARY KEY,
    name            text NOT NULL,
    webhook_url     text,
    -- Every active `whsec_` secret signs, so a receiver can rotate without a gap.
    webhook_secrets text[] NOT NULL DEFAULT '{}',
    emails          text[] NOT NULL DEFAULT '{}',
    language        text NOT NULL DEFAULT 'zh-CN',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notification.notices (
    -- Also the `webhook-id`: stable across retries, so receivers can drop repeats.
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    source_event_id uuid NOT NULL UNIQUE,
    jurisdiction    text NOT NULL,
    handover_no     text,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notices_jurisdiction ON notification.notices (jurisdiction, created_at);

CREATE TABLE notification.deliveries (
    id              bigserial PRIMARY KEY,
    notice_id       uuid NOT NULL REFERENCES notification.notices (id),
    channel         text NOT NULL,
    target          text NOT NULL,
    -- pending, delivered, dead
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A worker holds a delivery until then; a crashed worker's deliveries come free again.
    lease_until     timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    UNIQUE (notice_id, channel, target)
);
CREATE INDEX deliveries_due ON notification.deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE notification.attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES notification.deliveries (id),
    attempted_at timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL,
    status_code  integer,
    latency_ms   integer NOT NULL,
    error        text
);
CREATE INDEX attempts_delivery ON notification.attempts (delivery_id);
