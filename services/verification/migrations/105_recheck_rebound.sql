-- A failed re-check leaves the closed problem closed and makes a new ledger entry, a rebound
-- linked to it: the new entry's id, chosen when the verdict is recorded.
ALTER TABLE verification.rechecks ADD COLUMN rebound_id uuid;
