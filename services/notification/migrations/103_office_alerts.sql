-- What the campaign office must decide (a dispute, an extension request), told by e-mail to
-- every person of the office who has one. One row per event, so a redelivery tells nobody twice.
CREATE TABLE notification.office_alerts (
    source_event_id uuid PRIMARY KEY,
    kind            text NOT NULL,
    problem_id      uuid NOT NULL,
    jurisdiction    text NOT NULL,
    detail          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX office_alerts_unsent ON notification.office_alerts (next_attempt_at) WHERE sent_at IS NULL;
