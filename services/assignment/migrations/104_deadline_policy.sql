-- The deadline policy, versioned: the campaign office sets a new version through the API; the
-- configured policy is version 1. A handover sheet records the version its deadlines came from.
CREATE TABLE assignment.deadline_policies (
    version  integer PRIMARY KEY,
    policy   jsonb NOT NULL,
    reason   text,
    set_by   text NOT NULL,
    set_at   timestamptz NOT NULL
);
ALTER TABLE assignment.handovers ADD COLUMN deadline_policy_version integer;
