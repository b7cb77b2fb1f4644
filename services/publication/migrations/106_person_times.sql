-- The people each team sent in a round, from `team.assigned`: person-times are their sum, not
-- teams × 3. Rows from before this was said count 0.
ALTER TABLE publication.round_teams ADD COLUMN members integer NOT NULL DEFAULT 0;
