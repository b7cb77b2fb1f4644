-- The log writer looks up the history lines not yet in the log, for the problems it was given.
-- Nearly every line is logged within a second, so this index stays small; without it a pass
-- over a thousand problems read the whole history table (a year: 1,351 scans, 73 million rows).
CREATE INDEX history_unlogged ON publication.history (problem_id, at, id) WHERE entry_seq IS NULL;
