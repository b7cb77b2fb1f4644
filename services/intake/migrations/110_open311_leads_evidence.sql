-- Open311 complaints (leads for the covering teams) and field evidence (the bytes live in the
-- JetStream object store; this is what intake knows about each object).

-- A public complaint that came in through a complaint channel (an Open311 POST with a complaint
-- key). It is no ledger entry: the teams covering its city decide whether to go and look.
-- `complainant` (name, e-mail, phone, device and account ids) is internal: it is shown to the
-- covering teams and the campaign office only, never published, never put on an event.
CREATE TABLE intake.leads (
    id          uuid PRIMARY KEY,
    channel     text NOT NULL,
    city_code   text NOT NULL,
    county_code text,
    category    text NOT NULL,
    description text NOT NULL,
    address     text,
    lat         double precision,
    lon         double precision,
    media_url   text,
    attributes  jsonb NOT NULL,
    complainant jsonb NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX leads_city ON intake.leads (city_code, received_at DESC);

-- When each ledger entry's status last changed, for Open311's `updated_datetime`.
ALTER TABLE intake.problem_status ADD COLUMN changed_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION intake.problem_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.closed IS DISTINCT FROM OLD.closed THEN
        NEW.changed_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER problem_status_changed BEFORE UPDATE ON intake.problem_status
    FOR EACH ROW EXECUTE FUNCTION intake.problem_status_changed();

-- One uploaded photo or document, named by its SHA-256 (hex) in the object store.
CREATE TABLE intake.evidence (
    sha256       text PRIMARY KEY,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    -- `public` or `internal`; once public, always public.
    visibility   text NOT NULL CHECK (visibility IN ('public', 'internal')),
    -- Who uploaded it first (role and team or jurisdiction): internal.
    uploaded_by  jsonb NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now()
);
