-- A rebound found on a re-check may be of last year's problem, which intake never received: its
-- link (rebound_of) names a ledger entry that need not be one of intake's reports.
ALTER TABLE intake.problems DROP CONSTRAINT IF EXISTS problems_rebound_of_fkey;
