-- Verification owns rectification reports, verdicts and each problem's progress towards closure.
-- What it needs of teams and problems it keeps from intake's and assignment's events.

CREATE TABLE verification.teams (
    id            text PRIMARY KEY,
    home_province text NOT NULL
);

CREATE TABLE verification.problems (
    problem_id     uuid PRIMARY KEY,
    round_id       text,
    city_code      text NOT NULL,
    county_code    text,
    category       text,
    finder_team    text,
    jurisdiction   text,
    handover_no    text,
    deadline       date,
    -- reported, assigned, acknowledged, rectification_reported, reopened, closed
    status         text NOT NULL DEFAULT 'reported',
    -- This service's own counter of events about the problem.
    problem_seq    bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX problems_city_status ON verification.problems (city_code, status);

CREATE TABLE verification.rectifications (
    id           uuid PRIMARY KEY,
    problem_id   uuid NOT NULL REFERENCES verification.problems (problem_id),
    measures     text NOT NULL,
    evidence     jsonb NOT NULL,
    completed_at timestamptz NOT NULL,
    reported_by  text NOT NULL,
    reported_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rectifications_problem ON verification.rectifications (problem_id);

CREATE TABLE verification.verdicts (
    id         uuid PRIMARY KEY,
    problem_id uuid NOT NULL REFERENCES verification.problems (problem_id),
    result     text NOT NULL,
    team       text NOT NULL,
    note       text,
    evidence   jsonb NOT NULL,
    given_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verdicts_problem ON verification.verdicts (problem_id);
