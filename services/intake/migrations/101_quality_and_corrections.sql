-- Team quality figures and the campaign office's corrections.

-- Items refused per round and team (checks, problems and duplicates are counted from the rows).
CREATE TABLE intake.refusals (
    round_id text NOT NULL,
    team_id  text NOT NULL,
    refused  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (round_id, team_id)
);

ALTER TABLE intake.problems
    ADD COLUMN withdrawn_at  timestamptz,
    ADD COLUMN withdrawn_why text,
    ADD COLUMN merged_why    text;

-- Each city's package (三位一体包保): one ministry department, one affiliated unit and one
-- provincial department.
CREATE TABLE intake.city_packages (
    city_code             text PRIMARY KEY,
    ministry_department   text NOT NULL,
    affiliated_unit       text NOT NULL,
    provincial_department text NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
