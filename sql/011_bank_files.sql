-- 011: the bank's side: CNAB 240 remessas sent to the bank and retornos received from it.
--
-- A boleto is payable once the bank has registered it. The fund sends a remessa (file
-- to the bank) asking for registrations and write-offs, and receives a retorno (file
-- from the bank) reporting registrations, rejections, payments (liquidações) and
-- write-offs (baixas). billing/cnab/ writes and reads the files; this migration keeps
-- what was sent and received, and the charge's side of it.

-- A charge the bank confirmed is 'registered': issued, and payable at any bank. It sits
-- between issued and paid, owed with a boleto out like 'issued'. The CHECKs live on the
-- partitioned parent and reach every partition from there.
ALTER TABLE charges DROP CONSTRAINT charges_status_check;
ALTER TABLE charges ADD CONSTRAINT charges_status_check CHECK (
    status IN ('pending', 'issued', 'registered', 'paid', 'partially_paid', 'canceled')
);
ALTER TABLE charges DROP CONSTRAINT charges_status_boleto;
ALTER TABLE charges ADD CONSTRAINT charges_status_boleto CHECK (
    (status <> 'pending' OR barcode IS NULL)
    AND (status NOT IN ('issued', 'registered') OR barcode IS NOT NULL)
);

-- What the bank said about the charge's boleto, kept beside its status: a charge
-- registered and then partially paid stays known as registered. Columns without
-- defaults: only the catalogue changes, however many charges there are.
ALTER TABLE charges
    -- When a retorno confirmed the registration (occurrence 02).
    ADD COLUMN registered_at timestamptz,
    -- The bank's reason when it refused the registration (occurrence 03): the charge is
    -- flagged for an operator until a later confirmation clears it.
    ADD COLUMN registration_rejection text,
    -- When a retorno reported the boleto written off (baixa, occurrence 09).
    ADD COLUMN written_off_at timestamptz;
-- The Charges filter "Registration rejected": a handful of rows, found at once.
CREATE INDEX charges_registration_rejected_idx ON charges (id)
    WHERE registration_rejection IS NOT NULL;

-- The bank's own events on a charge's history.
ALTER TABLE charge_events DROP CONSTRAINT charge_events_kind_check;
ALTER TABLE charge_events ADD CONSTRAINT charge_events_kind_check CHECK (
    kind IN ('payment', 'marked_paid', 'canceled', 'status', 'registered',
             'registration_rejected', 'written_off')
);
-- Payments reported in a retorno (liquidações) are recorded through the same
-- idempotent path as the webhook's, with their own source.
ALTER TABLE payments DROP CONSTRAINT payments_source_check;
ALTER TABLE payments ADD CONSTRAINT payments_source_check CHECK (
    source IN ('webhook', 'operator', 'retorno')
);

-- The file sequence number (NSA) of each bank's remessas: the last one given. Taken
-- with UPDATE ... RETURNING in the transaction that stores the file, under the
-- remessa's lock: a committed number is never given again, and a generation that
-- fails gives its number back unused (the bank never saw that file), so the numbers
-- the bank receives have no gaps either.
CREATE TABLE bank_file_sequences (
    bank_code text PRIMARY KEY,
    last_nsa integer NOT NULL CHECK (last_nsa BETWEEN 0 AND 999999),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER bank_file_sequences_updated_at BEFORE UPDATE ON bank_file_sequences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per remessa file, with the file itself (zlib-compressed, at most a few MB:
-- one batch of at most 99,999 records), so it downloads again byte for byte.
CREATE TABLE remessas (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bank_code text NOT NULL,
    layout text NOT NULL,
    nsa integer NOT NULL CHECK (nsa BETWEEN 1 AND 999999),
    file_name text NOT NULL,
    generated_at timestamptz NOT NULL,
    actor text NOT NULL,
    -- Filled once the file is written, in the same transaction as the row.
    registrations integer NOT NULL DEFAULT 0 CHECK (registrations >= 0),
    write_offs integer NOT NULL DEFAULT 0 CHECK (write_offs >= 0),
    records integer NOT NULL DEFAULT 0 CHECK (records >= 0),
    total_amount numeric(16, 2) NOT NULL DEFAULT 0,
    size_bytes bigint NOT NULL DEFAULT 0,
    sha256 text NOT NULL DEFAULT '',
    content bytea NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT remessas_bank_nsa_key UNIQUE (bank_code, nsa)
);
CREATE INDEX remessas_generated_at_idx ON remessas (generated_at DESC);
CREATE TRIGGER remessas_updated_at BEFORE UPDATE ON remessas
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- What each remessa carries, in file order: a charge is sent for registration once,
-- and written off once (remessa_items_once), so generating again gives only what is new.
-- No foreign key to charges: checking one against the partitioned table costs about
-- 200 µs a row (measured: 230 s for a remessa of 1.1M charges, against seconds for the
-- rest of it). The rows are written by one statement that reads them from charges in
-- the same transaction, and a charge is never deleted (its payments keep it).
CREATE TABLE remessa_items (
    remessa_id bigint NOT NULL REFERENCES remessas (id),
    position integer NOT NULL CHECK (position > 0),
    charge_id bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('registration', 'write_off')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (remessa_id, position),
    CONSTRAINT remessa_items_once UNIQUE (charge_id, kind)
);
CREATE TRIGGER remessa_items_updated_at BEFORE UPDATE ON remessa_items
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per retorno received, with its counts, like `imports` for debtor files.
CREATE TABLE retornos (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name text NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    bank_code text NOT NULL,
    nsa integer,
    generated_on date,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    actor text NOT NULL,
    entries integer,
    registered integer,
    rejected integer,
    liquidated integer,
    written_off integer,
    unchanged integer,
    unknown integer,
    ignored integer,
    paid_amount numeric(16, 2),
    credited_amount numeric(16, 2),
    fees numeric(16, 2),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_seconds numeric(10, 3),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retornos_started_at_idx ON retornos (started_at DESC);
CREATE INDEX retornos_running_idx ON retornos (id) WHERE status = 'running';
CREATE TRIGGER retornos_updated_at BEFORE UPDATE ON retornos
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Each T/U pair of a retorno and what it did: the report of a file, unknown nosso
-- números included.
CREATE TABLE retorno_items (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    retorno_id bigint NOT NULL REFERENCES retornos (id) ON DELETE CASCADE,
    line integer NOT NULL,
    movement text NOT NULL,
    nosso_numero text NOT NULL,
    charge_id bigint REFERENCES charges (id),
    outcome text NOT NULL,
    detail text,
    paid_amount numeric(14, 2),
    credited_amount numeric(14, 2),
    fee numeric(14, 2),
    occurred_on date,
    credited_on date,
    payment_id bigint REFERENCES payments (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retorno_items_retorno_line_idx ON retorno_items (retorno_id, line);
CREATE INDEX retorno_items_charge_idx ON retorno_items (charge_id) WHERE charge_id IS NOT NULL;
CREATE INDEX retorno_items_payment_idx ON retorno_items (payment_id) WHERE payment_id IS NOT NULL;
CREATE TRIGGER retorno_items_updated_at BEFORE UPDATE ON retorno_items
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
