-- The counter of the latest event of each kind about a problem, so every event can say which
-- earlier one a consumer that handles only some kinds must follow (shared/src/order.rs).
ALTER TABLE assignment.ledger ADD COLUMN seq_by_kind jsonb NOT NULL DEFAULT '{}';
