-- Witnesses cosign the log's checkpoints (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature).
-- A witness is known by its verifier key (`name+id+key`), as the deployment configures it.

-- The cosignatures held for each checkpoint: the note signature line as the witness gave it,
-- served after the log's own signature on `/checkpoint`.
CREATE TABLE publication.cosignatures (
    tree_size    bigint NOT NULL REFERENCES publication.checkpoints (tree_size),
    witness_key  text NOT NULL,
    witness_name text NOT NULL,
    line         text NOT NULL,
    -- The time the witness signed (its cosignature's timestamp).
    cosigned_at  timestamptz NOT NULL,
    -- When the log received it: the public page changes then.
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, witness_key)
);

-- The size each witness last cosigned, the `old` of the next request to it (with a
-- consistency proof from there).
CREATE TABLE publication.witness_state (
    witness_key    text PRIMARY KEY,
    cosigned_size  bigint NOT NULL
);
