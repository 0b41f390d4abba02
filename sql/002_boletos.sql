-- 002: the boleto of each charge (nosso número, barcode, linha digitável, Pix code).
--
-- A charge is imported 'pending' with these columns NULL; billing.boletos issues it
-- once, filling them together and moving it to 'issued'. Columns are added without
-- defaults, so this ALTER only changes the catalogue, however large charges is.

ALTER TABLE charges
    -- The bank's number for this boleto: unique and never reused (nosso_numero_seq).
    ADD COLUMN nosso_numero bigint,
    -- The 44 digits of the bars, and the 47-digit line formatted as printed.
    ADD COLUMN barcode text,
    ADD COLUMN digitable_line text,
    -- Static Pix "copia e cola" for the same amount; NULL when no PIX_KEY is set.
    ADD COLUMN pix_code text,
    ADD COLUMN issued_at timestamptz,
    -- The bank's return file and payment look-ups find a charge by nosso número.
    -- NULLs (pending charges) do not collide in a unique index.
    ADD CONSTRAINT charges_nosso_numero_key UNIQUE (nosso_numero),
    -- A boleto is issued whole or not at all.
    ADD CONSTRAINT charges_boleto_whole CHECK (
        (nosso_numero IS NULL) = (barcode IS NULL)
        AND (nosso_numero IS NULL) = (digitable_line IS NULL)
        AND (nosso_numero IS NULL) = (issued_at IS NULL)
        AND (nosso_numero IS NOT NULL OR pix_code IS NULL)
    ),
    -- 'pending' means "no boleto yet" and 'issued' means "has one". Paid and canceled
    -- charges may have either (a charge can be canceled before it was ever issued).
    ADD CONSTRAINT charges_status_boleto CHECK (
        (status <> 'pending' OR barcode IS NULL)
        AND (status <> 'issued' OR barcode IS NOT NULL)
    );

-- Never issue twice: once a boleto exists, its number and codes cannot change (a
-- debtor may already hold the slip). The WHEN clause is checked without calling
-- the function, so the bulk issue (OLD.nosso_numero IS NULL) pays nothing for it.
-- (No percent signs in this file: the migration runner's driver reads them as
-- placeholders, hence the concatenated message.)
CREATE FUNCTION refuse_boleto_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'charge ' || OLD.id || ' already has boleto ' || OLD.nosso_numero
            || '; it cannot be issued again',
        ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER charges_boleto_immutable BEFORE UPDATE OF nosso_numero, barcode, digitable_line
    ON charges FOR EACH ROW
    WHEN (OLD.nosso_numero IS NOT NULL AND (
        NEW.nosso_numero IS DISTINCT FROM OLD.nosso_numero
        OR NEW.barcode IS DISTINCT FROM OLD.barcode
        OR NEW.digitable_line IS DISTINCT FROM OLD.digitable_line
    ))
    EXECUTE FUNCTION refuse_boleto_change();

-- One number per boleto. A sequence never hands out a value twice, even when the
-- transaction that took it rolls back (that number is simply skipped), so no two
-- boletos can ever share one. Ten digits is the smaller of the two free-field
-- layouts (BB convênio 7: 10 digits; CAIXA SIGCB: 15), so switching banks keeps
-- every number valid; NO CYCLE makes exhaustion an error, never a reuse.
CREATE SEQUENCE nosso_numero_seq AS bigint MINVALUE 1 MAXVALUE 9999999999 NO CYCLE;

-- The issuing queue: pending charges in id order, so the issuer reads and rewrites
-- the table front to back. Only pending rows are in it: it stays as small as the
-- backlog, and issuing adds nothing to it (an updated row enters a partial index
-- only if it still matches), while every other index of charges gets a new entry
-- for each issued row anyway, since nosso_numero, an indexed column, changes.
CREATE INDEX charges_pending_idx ON charges (id) WHERE status = 'pending';

-- Left as they are, on purpose:
-- * No fillfactor on charges. Free room on a page only helps HOT updates, and issuing
--   can never be one (nosso_numero is indexed and changes), so it would only make the
--   table of every import bigger.
-- * 001's index on (status, due_date) stays. Taking status out of it would not spare
--   the issue a single index entry, for the same reason, and the screens need it.
