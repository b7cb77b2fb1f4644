-- The public log becomes a Merkle log (RFC 9162) with signed checkpoints; the record gains what
-- the newer events say (overdue, reroutes, extensions, progress, escalations), the campaign
-- office's acts (typical cases, approval, corrections, retractions, takedowns) and the counts
-- behind the campaign summary.

ALTER TABLE publication.problems
    ADD COLUMN evidence          jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN deadline_at       timestamptz,
    ADD COLUMN overdue_on        date,
    ADD COLUMN rerouted_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN extended_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN progress_stage    text,
    ADD COLUMN progress_percent  integer,
    ADD COLUMN approved_at       timestamptz,
    ADD COLUMN typical_narrative text,
    ADD COLUMN typical_at        timestamptz,
    ADD COLUMN retracted_at      timestamptz,
    ADD COLUMN retraction_reason text;
CREATE INDEX problems_typical ON publication.problems (typical_at DESC) WHERE typical_at IS NOT NULL;
CREATE INDEX problems_keyset ON publication.problems (updated_at DESC, problem_id DESC) WHERE public;

-- What kind of public line a history row is: a step of the lifecycle, a note (reroute,
-- extension, progress, overdue), or an act of the campaign office.
ALTER TABLE publication.history
    ADD COLUMN kind text NOT NULL DEFAULT 'step',
    ADD COLUMN withdrawn boolean NOT NULL DEFAULT false;

-- The Merkle log. A leaf is SHA-256(0x00 || content hash), the content hashed apart from the
-- entry, so a lawful takedown can drop the content and keep its hash: a tombstone, not a hole.
-- `content` is the exact text that was hashed. `signature` is the log key's Ed25519 signature
-- over the entry's index and leaf hash, given when it was appended.
CREATE TABLE publication.log_entries (
    idx              bigint PRIMARY KEY CHECK (idx >= 0),
    kind             text NOT NULL,
    problem_id       uuid,
    content          text,
    content_hash     text NOT NULL,
    leaf_hash        text NOT NULL,
    signature        text NOT NULL,
    published_at     timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz,
    withdrawn_reason text
);
CREATE INDEX log_entries_problem ON publication.log_entries (problem_id, idx);

-- Signed tree heads, one whenever the log has grown since the last.
CREATE TABLE publication.checkpoints (
    tree_size  bigint PRIMARY KEY,
    root_hash  text NOT NULL,
    made_at    timestamptz NOT NULL,
    body       text NOT NULL,
    signature  text NOT NULL
);

-- The prototype's hash chain gives way to the Merkle log: its history is appended anew.
DROP TABLE publication.entries;
UPDATE publication.history SET entry_seq = NULL;

-- For the campaign summary: rounds, the teams sent each round, escalations of cities.
CREATE TABLE publication.rounds (
    round_id  text PRIMARY KEY,
    starts_on date NOT NULL,
    ends_on   date NOT NULL,
    kind      text NOT NULL
);
CREATE TABLE publication.round_teams (
    round_id text NOT NULL,
    team     text NOT NULL,
    PRIMARY KEY (round_id, team)
);
CREATE TABLE publication.escalations (
    source_event_id uuid PRIMARY KEY,
    city_code       text NOT NULL,
    level           text NOT NULL,
    escalated_at    timestamptz NOT NULL
);
CREATE INDEX escalations_city ON publication.escalations (city_code, escalated_at DESC);

ALTER TABLE publication.inspection_counts ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
