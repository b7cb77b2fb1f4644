-- Assignment owns the routing of problems to the responsible government, the handover sheets
-- (电子督办单) and the ledger (拉条挂账).

CREATE TABLE assignment.handovers (
    no              text PRIMARY KEY,
    round_id        text NOT NULL,
    city_code       text NOT NULL,
    issued_at       timestamptz NOT NULL,
    problem_count   integer NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text
);

-- The last sheet number given for a round, city and day (sheets are numbered per day).
CREATE TABLE assignment.handover_days (
    round_id  text NOT NULL,
    city_code text NOT NULL,
    day       date NOT NULL,
    last_seq  integer NOT NULL,
    PRIMARY KEY (round_id, city_code, day)
);

-- The ledger: one row per problem handed over, followed until it is closed.
CREATE TABLE assignment.ledger (
    problem_id       uuid PRIMARY KEY,
    round_id         text NOT NULL,
    city_code        text NOT NULL,
    county_code      text,
    jurisdiction     text NOT NULL,
    category         text NOT NULL,
    severity         text NOT NULL,
    site_name        text NOT NULL,
    description      text NOT NULL,
    rebound_of       uuid,
    received_at      timestamptz NOT NULL DEFAULT now(),
    handover_no      text REFERENCES assignment.handovers (no),
    assigned_at      timestamptz,
    deadline         date,
    status           text NOT NULL,
    -- This service's own counter of events about the problem.
    problem_seq      bigint NOT NULL DEFAULT 0,
    -- The last of verification's counters applied, so stale events are dropped.
    verification_seq bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_gathering ON assignment.ledger (round_id, city_code, received_at) WHERE handover_no IS NULL;
CREATE INDEX ledger_city ON assignment.ledger (city_code, status);
CREATE INDEX ledger_handover ON assignment.ledger (handover_no);
