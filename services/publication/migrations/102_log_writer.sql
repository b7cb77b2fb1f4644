-- One writer extends the public log. Consumers only record facts and history and mark the
-- problem here; the writer job decides its public status and visibility, appends its unlogged
-- history, and clears the mark, in a short transaction of its own.

-- Problems waiting for the writer. `mark` changes with every new mark, so the writer's order is
-- roughly the order things happened; `due_at` is when the writer should look (an embargo's end),
-- '-infinity' for at once.
CREATE SEQUENCE publication.pending_mark;
CREATE TABLE publication.pending (
    problem_id uuid PRIMARY KEY,
    mark       bigint NOT NULL DEFAULT nextval('publication.pending_mark'),
    due_at     timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX pending_due ON publication.pending (due_at, mark);

-- The log's compact range (RFC 9162): its size and the roots of the perfect subtrees that make
-- it, largest first. One row, locked by the writer while it appends. A NULL size: not built yet
-- (a log kept before this migration), the writer builds it from the entries once.
CREATE TABLE publication.log_state (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    size     bigint CHECK (size >= 0),
    frontier bytea[] NOT NULL DEFAULT '{}'
);
INSERT INTO publication.log_state (size) VALUES (NULL);

-- Every perfect subtree of the log (2^level leaves from idx * 2^level), leaves at level 0, stored
-- as the frontier completes it: proofs read O(log n) of them instead of every leaf.
CREATE TABLE publication.log_nodes (
    level smallint NOT NULL CHECK (level >= 0),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

-- What the former job would have looked at: problems handed over but not public yet, and public
-- problems with history not logged yet.
INSERT INTO publication.pending (problem_id)
SELECT problem_id FROM publication.problems p
WHERE (NOT public AND handed_over_at IS NOT NULL AND category IS NOT NULL)
   OR (public AND EXISTS (SELECT 1 FROM publication.history h WHERE h.problem_id = p.problem_id AND h.entry_seq IS NULL))
ORDER BY handed_over_at;
