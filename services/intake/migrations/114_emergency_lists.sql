-- The heavy-pollution emergency lists (应急减排清单): per city, the enterprises listed and the
-- measures each must take at each alert level; and the alert periods (预警) a city declares. A
-- site check of a listed enterprise during an alert is an emergency-plan check.
CREATE TABLE intake.emergency_enterprises (
    city_code   text NOT NULL,
    credit_code text NOT NULL,
    name        text NOT NULL,
    measures    jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_code, credit_code)
);

CREATE TABLE intake.alerts (
    city_code  text NOT NULL,
    id         text NOT NULL,
    level      text NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_code, id)
);
CREATE INDEX alerts_by_city_and_time ON intake.alerts (city_code, starts_at);
