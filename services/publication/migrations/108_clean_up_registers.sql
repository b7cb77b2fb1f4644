-- The clean-up registers' items and their latest states, from `register.updated`: counted, never
-- listed (the figures name no enterprise).
CREATE TABLE publication.register_items (
    city_code  text NOT NULL,
    register   text NOT NULL,
    item_id    text NOT NULL,
    state      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_code, register, item_id)
);
