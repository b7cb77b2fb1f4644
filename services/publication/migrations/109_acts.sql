-- The campaign office's acts made public: summonses once held (with their commitments and
-- what verifiers found of them) and special inspections once concluded. Nothing of a summons
-- scheduled but not held, nor any internal note, reaches publication at all.

CREATE TABLE publication.summonses (
    summons_id uuid PRIMARY KEY,
    city_code  text NOT NULL,
    -- [{ "name", "post" }], as the campaign published them
    officials  jsonb NOT NULL,
    held_on    date NOT NULL,
    place      text NOT NULL,
    reasons    text NOT NULL,
    problems   uuid[] NOT NULL,
    -- [{ "commitment_id", "text", "follow_up_on" }]
    commitments jsonb NOT NULL,
    held_at    timestamptz NOT NULL
);

-- Kept apart from the summons: a verdict may arrive before the summons it belongs to.
CREATE TABLE publication.commitment_results (
    commitment_id uuid PRIMARY KEY,
    summons_id    uuid NOT NULL,
    result        text NOT NULL,
    verified_at   timestamptz NOT NULL
);

CREATE TABLE publication.special_inspections (
    case_id      uuid PRIMARY KEY,
    city_code    text NOT NULL,
    -- { categories, counties, from, to }
    scope        jsonb NOT NULL,
    linked       uuid[] NOT NULL,
    reported     uuid[] NOT NULL,
    conclusion   text NOT NULL,
    concluded_on date NOT NULL,
    opened_at    timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
