-- The clean-up registers of each city: the "两散" registers (scattered polluting enterprises, coal
-- boilers) and the coal-to-gas villages, each item with its latest state.
CREATE TABLE intake.register_items (
    city_code   text NOT NULL,
    register    text NOT NULL,
    item_id     text NOT NULL,
    name        text NOT NULL,
    county_code text,
    state       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_code, register, item_id)
);
