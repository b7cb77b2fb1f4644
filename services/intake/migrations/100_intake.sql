-- Intake owns the campaign set-up (rounds, teams and the cities each team covers) and the
-- inspections and problems as reported.

CREATE TABLE intake.rounds (
    id         text PRIMARY KEY,
    starts_on  date NOT NULL,
    ends_on    date NOT NULL,
    kind       text NOT NULL,
    cities     text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE intake.teams (
    id            text PRIMARY KEY,
    home_province text NOT NULL,
    members       jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE intake.round_teams (
    round_id   text NOT NULL REFERENCES intake.rounds (id),
    team_id    text NOT NULL REFERENCES intake.teams (id),
    cities     text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, team_id)
);

-- One site check, with or without problems. `result` is what the client was answered, so a
-- resend of the same id gets the same answer.
CREATE TABLE intake.inspections (
    id          uuid PRIMARY KEY,
    round_id    text NOT NULL REFERENCES intake.rounds (id),
    team_id     text NOT NULL REFERENCES intake.teams (id),
    city_code   text NOT NULL,
    county_code text,
    checked_at  timestamptz NOT NULL,
    site_key    text NOT NULL,
    site        jsonb NOT NULL,
    result      jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspections_round_team ON intake.inspections (round_id, team_id);

CREATE TABLE intake.problems (
    id            uuid PRIMARY KEY,
    inspection_id uuid NOT NULL REFERENCES intake.inspections (id),
    round_id      text NOT NULL,
    team_id       text NOT NULL,
    city_code     text NOT NULL,
    county_code   text,
    site_key      text NOT NULL,
    category      text NOT NULL,
    severity      text NOT NULL,
    description   text NOT NULL,
    evidence      jsonb NOT NULL,
    -- A duplicate is kept for the team's figures but is no ledger entry of its own.
    duplicate_of  uuid REFERENCES intake.problems (id),
    rebound_of    uuid REFERENCES intake.problems (id),
    reported_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX problems_site_category ON intake.problems (site_key, category, reported_at DESC)
    WHERE duplicate_of IS NULL;

-- Whether each ledger entry is closed, as verification's events say; decides duplicate or rebound.
CREATE TABLE intake.problem_status (
    problem_id  uuid PRIMARY KEY,
    closed      boolean NOT NULL,
    problem_seq bigint NOT NULL
);
