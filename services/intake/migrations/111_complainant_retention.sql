-- Complainants' contact details are erased after a configurable time; the lead stays.
ALTER TABLE intake.leads ADD COLUMN complainant_erased_at timestamptz;
CREATE INDEX leads_complainant_kept ON intake.leads (received_at) WHERE complainant_erased_at IS NULL;
