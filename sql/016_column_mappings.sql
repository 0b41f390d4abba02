-- 016: column mappings for files from other systems (issue 12).
--
-- A file whose header does not name the expected columns (after the aliases accepted
-- on reading) is mapped by an operator: each required column to one of the file's
-- columns. A mapping is saved under the name of its source ("Banco X", "ERP") and
-- offered again when a file with the same header arrives (headers_key: the header's
-- names, normalised, in order). The CLI and the API use one by name (--mapping NAME).

CREATE TABLE column_mappings (
    name text PRIMARY KEY CHECK (length(btrim(name)) BETWEEN 1 AND 80),
    headers_key text NOT NULL,
    columns jsonb NOT NULL CHECK (jsonb_typeof(columns) = 'object'),
    created_by text NOT NULL,
    updated_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The Upload page asks "is there a mapping for this header?" for every file it cannot read.
CREATE INDEX column_mappings_headers_key_idx ON column_mappings (headers_key, updated_at DESC);

CREATE TRIGGER column_mappings_updated_at BEFORE UPDATE ON column_mappings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
