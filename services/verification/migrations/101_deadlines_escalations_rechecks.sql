-- Overdue flags, the escalation ladder, staged progress of long rectifications, rounds (for
-- re-check sweeps) and re-checks of closed problems.

ALTER TABLE verification.problems
    -- The first day the problem was overdue for the deadline in force; cleared by a new deadline.
    ADD COLUMN overdue_since  date,
    -- Back after closure: reported anew at the same site and category, or failed a re-check.
    ADD COLUMN rebound        boolean NOT NULL DEFAULT false,
    ADD COLUMN reopened_count integer NOT NULL DEFAULT 0,
    ADD COLUMN closed_at      timestamptz;
CREATE INDEX problems_deadline ON verification.problems (deadline) WHERE overdue_since IS NULL;

CREATE TABLE verification.progress (
    id           uuid PRIMARY KEY,
    problem_id   uuid NOT NULL REFERENCES verification.problems (problem_id),
    stage        text NOT NULL,
    percent_done integer,
    note         text,
    reported_by  text NOT NULL,
    reported_at  timestamptz NOT NULL
);

CREATE TABLE verification.rounds (
    id        text PRIMARY KEY,
    starts_on date NOT NULL,
    ends_on   date NOT NULL,
    swept_at  timestamptz
);

CREATE TABLE verification.rechecks (
    id          uuid PRIMARY KEY,
    problem_id  uuid NOT NULL REFERENCES verification.problems (problem_id),
    -- The round after which the sweep that chose it ran.
    after_round text NOT NULL,
    created_at  timestamptz NOT NULL,
    result      text,
    team        text,
    note        text,
    verified_at timestamptz,
    UNIQUE (problem_id, after_round)
);
CREATE INDEX rechecks_open ON verification.rechecks (created_at) WHERE result IS NULL;

-- Each step of the ladder a city has reached, with the counts that put it there.
CREATE TABLE verification.escalations (
    city_code    text NOT NULL,
    rank         integer NOT NULL,
    level        text NOT NULL,
    overdue      bigint NOT NULL,
    reopened     bigint NOT NULL,
    rebounds     bigint NOT NULL,
    escalated_at timestamptz NOT NULL,
    PRIMARY KEY (city_code, rank)
);
