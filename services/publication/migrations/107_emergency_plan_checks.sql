-- Site checks of listed enterprises during an alert (emergency-plan checks), per round and city.
ALTER TABLE publication.inspection_counts ADD COLUMN emergency_checks bigint NOT NULL DEFAULT 0;
