-- Notices beyond handover sheets: quiet hours, package units as CC recipients, SMS, receipts,
-- and the deadlines notification keeps to send reminders.

-- A city's package units (三位一体包保) are recipients too, keyed `{city}/{role}` and marked as
-- the CC of their city.
ALTER TABLE notification.recipients
    ADD COLUMN phones      text[] NOT NULL DEFAULT '{}',
    -- Asia/Shanghai wall-clock times; non-urgent notices wait while `quiet_from <= t < quiet_to`
    -- (across midnight when `quiet_from > quiet_to`).
    ADD COLUMN quiet_from  time,
    ADD COLUMN quiet_to    time,
    ADD COLUMN cc_of       text,
    ADD COLUMN role        text;
CREATE INDEX recipients_cc_of ON notification.recipients (cc_of) WHERE cc_of IS NOT NULL;

ALTER TABLE notification.notices
    ADD COLUMN city_code       text,
    -- Urgent notices (overdue, escalation) ignore quiet hours and also go by SMS.
    ADD COLUMN urgent          boolean NOT NULL DEFAULT false,
    -- owner (the jurisdiction's recipient, else its city's), owner_and_units, or units.
    ADD COLUMN audience        text NOT NULL DEFAULT 'owner',
    -- A handover notice sent again because nobody acknowledged it.
    ADD COLUMN resend_of       uuid REFERENCES notification.notices (id),
    -- Times on the deployment's clock (simulated in drills), as business times are.
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN resent_at       timestamptz,
    ADD COLUMN raised_at       timestamptz;
UPDATE notification.notices SET city_code = jurisdiction WHERE city_code IS NULL;
ALTER TABLE notification.notices ALTER COLUMN city_code SET NOT NULL;
CREATE INDEX notices_awaiting_receipt ON notification.notices (delivered_at)
    WHERE kind = 'handover' AND resend_of IS NULL AND acknowledged_at IS NULL AND raised_at IS NULL;
CREATE INDEX notices_handover_no ON notification.notices (handover_no) WHERE handover_no IS NOT NULL;

ALTER TABLE notification.deliveries
    -- The recipient (`recipients.code`) this delivery is for, and whether it is a CC.
    ADD COLUMN addressee   text,
    ADD COLUMN cc          boolean NOT NULL DEFAULT false,
    -- Why a due delivery is held back (quiet hours), shown on GET /v1/notices.
    ADD COLUMN waiting_for text;
UPDATE notification.deliveries d SET addressee = n.jurisdiction FROM notification.notices n WHERE n.id = d.notice_id;
ALTER TABLE notification.deliveries ALTER COLUMN addressee SET NOT NULL;

-- Each problem's deadline, from assignment's and verification's events, for reminders.
CREATE TABLE notification.problems (
    problem_id       uuid PRIMARY KEY,
    city_code        text NOT NULL,
    jurisdiction     text NOT NULL,
    category         text,
    site_name        text,
    description      text,
    deadline         date,
    -- The business time of the event that set the deadline: the later one wins, whichever
    -- producer it came from.
    deadline_set_at  timestamptz,
    -- Each producer's own counter for the problem; older events are stale.
    assignment_seq   bigint NOT NULL DEFAULT 0,
    verification_seq bigint NOT NULL DEFAULT 0,
    closed           boolean NOT NULL DEFAULT false,
    -- The deadline a reminder went out for; a new deadline gets a reminder of its own.
    reminded_for     date
);
CREATE INDEX problems_open_deadlines ON notification.problems (deadline) WHERE NOT closed;

-- The key that signs receipt links; made once, so links stay valid across restarts.
CREATE TABLE notification.keys (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE INDEX notices_city ON notification.notices (city_code, created_at);
