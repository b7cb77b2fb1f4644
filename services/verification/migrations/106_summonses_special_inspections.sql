-- The campaign office's acts on a city's ladder: summonses (约谈) with their written
-- commitments, and special inspections (专项督察) with their findings.

CREATE TABLE verification.summonses (
    id           uuid PRIMARY KEY,
    city_code    text NOT NULL,
    -- [{ "name": …, "post": … }]
    officials    jsonb NOT NULL,
    scheduled_on date NOT NULL,
    place        text NOT NULL,
    reasons      text NOT NULL,
    problems     uuid[] NOT NULL DEFAULT '{}',
    -- The office's own notes: never in an event.
    note         text,
    held_note    text,
    held_on      date,
    scheduled_at timestamptz NOT NULL,
    held_at      timestamptz
);
CREATE INDEX summonses_city ON verification.summonses (city_code);

CREATE TABLE verification.commitments (
    id           uuid PRIMARY KEY,
    summons_id   uuid NOT NULL REFERENCES verification.summonses (id),
    city_code    text NOT NULL,
    position     integer NOT NULL,
    text         text NOT NULL,
    follow_up_on date NOT NULL,
    -- kept | not_kept, from a verifier
    result       text,
    team         text,
    note         text,
    verified_at  timestamptz
);
CREATE INDEX commitments_city ON verification.commitments (city_code);

CREATE TABLE verification.special_inspections (
    id           uuid PRIMARY KEY,
    city_code    text NOT NULL,
    -- { categories, counties, from, to }
    scope        jsonb NOT NULL,
    teams        text[] NOT NULL,
    note         text,
    opened_at    timestamptz NOT NULL,
    conclusion   text,
    concluded_on date,
    concluded_at timestamptz
);

CREATE TABLE verification.special_inspection_findings (
    case_id    uuid NOT NULL REFERENCES verification.special_inspections (id),
    problem_id uuid NOT NULL REFERENCES verification.problems (problem_id),
    -- linked (an existing problem) | reported (found by the case's team)
    kind       text NOT NULL,
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (case_id, problem_id)
);
