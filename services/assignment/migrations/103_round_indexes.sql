-- The ledger's counts and the sheets listed by round (the simulator and the workbench poll them).
CREATE INDEX ledger_round_status ON assignment.ledger (round_id, status);
CREATE INDEX handovers_round_city ON assignment.handovers (round_id, city_code);
