-- 001: debtors, charges, imports and their rejections.
-- Keys compared in bulk (governmentId, debtId) use the "C" collation: byte order,
-- no linguistic sorting cost on a million-row import.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE imports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name text NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'failed', 'refused')),
    lenient_documents boolean NOT NULL DEFAULT false,
    encoding text,
    delimiter text,
    extra_columns text[] NOT NULL DEFAULT '{}',
    rows integer,
    imported integer,
    duplicates integer,
    rejected integer,
    reason_counts jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_seconds numeric(10, 3),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX imports_started_at_idx ON imports (started_at DESC);
CREATE INDEX imports_sha256_idx ON imports (sha256);
CREATE INDEX imports_running_idx ON imports (id) WHERE status = 'running';
CREATE TRIGGER imports_updated_at BEFORE UPDATE ON imports
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE import_rejections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line integer NOT NULL,
    name text,
    government_id text,
    email text,
    debt_amount text,
    debt_due_date text,
    debt_id text,
    reasons text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX import_rejections_import_line_idx ON import_rejections (import_id, line);
CREATE TRIGGER import_rejections_updated_at BEFORE UPDATE ON import_rejections
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE debtors (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Normalised document: CPF digits or CNPJ characters, punctuation stripped.
    government_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    -- The name lower-cased without accents (billing.search.fold), written with the name.
    search_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT debtors_government_id_key UNIQUE (government_id)
);
-- Several debtors may share an address; look-ups are case-insensitive.
CREATE INDEX debtors_email_idx ON debtors (lower(email) COLLATE "C");
-- Accent-insensitive word search on the name with built-in full-text search, which the
-- embedded server has (no pg_trgm there): "conceicao" or the prefix 'concei:*' finds
-- "Maria da Conceição". E-mail, governmentId and debtId are found by prefix on btrees.
CREATE INDEX debtors_search_name_idx ON debtors
    USING gin (to_tsvector('simple'::regconfig, search_name));
CREATE TRIGGER debtors_updated_at BEFORE UPDATE ON debtors
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE charges (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    debt_id text COLLATE "C" NOT NULL,
    debtor_id bigint NOT NULL REFERENCES debtors (id),
    import_id bigint NOT NULL REFERENCES imports (id),
    amount numeric(14, 2) NOT NULL CHECK (amount > 0),
    due_date date NOT NULL,
    status text COLLATE "C" NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'issued', 'paid', 'partially_paid', 'canceled')),
    -- As written in the row that created the charge: the address that gets billed.
    payer_name text NOT NULL,
    payer_email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT charges_debt_id_key UNIQUE (debt_id)
);
-- Without a unique tail these indexes deduplicate (a few thousand due dates, five
-- statuses): small, and cheap to maintain on a million-row import. Keyset pages order
-- by (due_date, id) with an incremental sort on top of them.
CREATE INDEX charges_status_due_date_idx ON charges (status, due_date);
CREATE INDEX charges_due_date_idx ON charges (due_date);
CREATE INDEX charges_debtor_idx ON charges (debtor_id);
CREATE INDEX charges_import_idx ON charges (import_id);
CREATE TRIGGER charges_updated_at BEFORE UPDATE ON charges
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
