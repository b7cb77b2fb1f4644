-- Disputes ("not ours"), reroutes, deadline extensions, overdue flags, and the jurisdiction
-- table the campaign office can extend.

ALTER TABLE assignment.ledger
    -- The deadline first given; `deadline` is the one in force after extensions and reroutes.
    ADD COLUMN original_deadline date,
    ADD COLUMN overdue boolean NOT NULL DEFAULT false,
    ADD COLUMN disputed boolean NOT NULL DEFAULT false;

CREATE TABLE assignment.jurisdictions (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    city_code  text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assignment.disputes (
    id           uuid PRIMARY KEY,
    problem_id   uuid NOT NULL REFERENCES assignment.ledger (problem_id),
    jurisdiction text NOT NULL,
    reason       text NOT NULL,
    -- open, rerouted, dismissed
    status       text NOT NULL DEFAULT 'open',
    resolution   text,
    raised_at    timestamptz NOT NULL,
    resolved_at  timestamptz
);
CREATE INDEX disputes_open ON assignment.disputes (raised_at) WHERE status = 'open';

CREATE TABLE assignment.reroutes (
    id                uuid PRIMARY KEY,
    problem_id        uuid NOT NULL REFERENCES assignment.ledger (problem_id),
    from_jurisdiction text NOT NULL,
    to_jurisdiction   text NOT NULL,
    reason            text NOT NULL,
    deadline          date NOT NULL,
    rerouted_at       timestamptz NOT NULL
);

CREATE TABLE assignment.extensions (
    id                 uuid PRIMARY KEY,
    problem_id         uuid NOT NULL REFERENCES assignment.ledger (problem_id),
    requested_by       text NOT NULL,
    reason             text NOT NULL,
    previous_deadline  date NOT NULL,
    requested_deadline date NOT NULL,
    -- requested, granted, refused
    status             text NOT NULL DEFAULT 'requested',
    decision_reason    text,
    requested_at       timestamptz NOT NULL,
    decided_at         timestamptz
);
CREATE INDEX extensions_problem ON assignment.extensions (problem_id);
