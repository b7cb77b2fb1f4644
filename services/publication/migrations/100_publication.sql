-- Publication owns the redacted public record: what each problem's public fields are, its
-- public history, the append-only hash chain of everything published, and the counts behind
-- the statistics. Everything here comes from other services' events.

CREATE TABLE publication.problems (
    problem_id                uuid PRIMARY KEY,
    -- from intake
    round_id                  text,
    category                  text,
    severity                  text,
    city_code                 text,
    county_code               text,
    site_name                 text,
    site_lat                  double precision,
    site_lon                  double precision,
    description               text,
    found_at                  timestamptz,
    rebound_of                uuid,
    -- from assignment
    handover_no               text,
    jurisdiction              text,
    handed_over_at            timestamptz,
    deadline                  date,
    acknowledged_at           timestamptz,
    assignment_seq            bigint NOT NULL DEFAULT 0,
    -- from verification
    verification_status       text,
    rectification_reported_at timestamptz,
    verified_at               timestamptz,
    closed_at                 timestamptz,
    verification_seq          bigint NOT NULL DEFAULT 0,
    -- derived
    status                    text NOT NULL DEFAULT 'reported',
    public                    boolean NOT NULL DEFAULT false,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX problems_public ON publication.problems (updated_at DESC) WHERE public;
CREATE INDEX problems_city ON publication.problems (city_code, category) WHERE public;

-- The public history of each problem, one row per event, chained once the problem is public.
CREATE TABLE publication.history (
    id              bigserial PRIMARY KEY,
    problem_id      uuid NOT NULL,
    source_event_id uuid NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    status          text NOT NULL,
    what            text NOT NULL,
    entry_seq       bigint
);
CREATE INDEX history_problem ON publication.history (problem_id, at, id);

-- Append-only: every public entry with the hash of its content and of the chain so far.
CREATE TABLE publication.entries (
    seq          bigint PRIMARY KEY,
    problem_id   uuid NOT NULL,
    content      jsonb NOT NULL,
    content_hash text NOT NULL,
    prev_hash    text NOT NULL,
    entry_hash   text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);

-- Site checks per round and city, from intake's inspection.recorded.
CREATE TABLE publication.inspection_counts (
    round_id   text NOT NULL,
    city_code  text NOT NULL,
    checks     bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (round_id, city_code)
);
