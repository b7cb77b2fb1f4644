-- Last year's ledger, imported so each of its problems is re-verified one by one.
ALTER TABLE verification.problems
    ADD COLUMN legacy    boolean NOT NULL DEFAULT false,
    ADD COLUMN site_name text;
