-- A retraction keeps its reason code beside the office's words, so mirrors of the feeds can act
-- on why a problem left the public record (the tombstones in Atom, JSON Feed and GeoJSON).
ALTER TABLE publication.problems ADD COLUMN retraction_code text;
-- A takedown's reason code, beside its words, on the entry it withdrew.
ALTER TABLE publication.log_entries ADD COLUMN withdrawn_code text;
