-- 009: the Overview's figures kept up to date, instead of summed over every charge at
-- each visit.
--
-- The Overview needs, per status and due date, how many charges, their amount and what
-- was received on them. Summed from `charges` at each visit that grows with the fund
-- (bench_growth: 1.5 s at 5.5M charges, on a busy machine 3.5 s). `charge_totals` holds
-- the same figures as rows of changes: every statement that inserts, updates or deletes
-- charges (an import's COPY, a payment, a cancellation, the worker issuing boletos, any
-- tool) appends, in its own transaction, one row per (status, due_date) it changed, with
-- what it added or took away. Readers add the rows up per (status, due_date): a few
-- thousand rows whatever the number of charges. Aging is computed from due_date when
-- read, so the passing of a due date writes nothing.
--
-- Append-only, so writers never wait on each other: an import adding 1.1M charges and an
-- operator marking one paid each insert their own rows; no row is updated in place. A
-- compaction (compact_charge_totals, run by the worker's daily cycle and after imports)
-- folds the rows into one per key in one statement.
--
-- `received` is what the partially paid charges of the key have received: the sum of
-- their payments. A paid charge counts its whole amount when read; other statuses
-- count nothing (see db/overview.py). It follows both tables: a charge entering or
-- leaving 'partially_paid' brings or takes its payments' sum (triggers on charges), a
-- payment of a partially paid charge adds to it (triggers on payments).
--
-- The application's role may only read the table: the triggers and functions below
-- write it as the owner (SECURITY DEFINER), so no code path can set a figure directly.
--
-- Rows that enter `charges` without an INSERT on it (a table attached as a partition
-- fires no trigger) are added by add_charge_totals_of(relation) in the same transaction.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

CREATE TABLE charge_totals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status text COLLATE "C" NOT NULL,
    due_date date NOT NULL,
    charges bigint NOT NULL,
    amount numeric NOT NULL,
    received numeric NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Inserted charges, per key. A new charge has no payment yet (payments reference it),
-- but a partially paid row counts its payments anyway: the same rule everywhere.
CREATE FUNCTION charge_totals_after_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT n.status, n.due_date, count(*), sum(n.amount),
           coalesce(sum(CASE WHEN n.status = 'partially_paid' THEN
               (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = n.id) END), 0)
    FROM inserted_charges AS n
    GROUP BY n.status, n.due_date;
    RETURN NULL;
END
$$;

-- Updated charges: the old rows taken away, the new ones added, keys whose figures did
-- not move left out (an UPDATE of updated_at alone appends nothing). The payments summed
-- for an old partially paid row are today's: the payment triggers below kept the
-- figures at exactly that sum while the charge was partially paid.
CREATE FUNCTION charge_totals_after_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT status, due_date, sum(charges), sum(amount), sum(received)
    FROM (
        SELECT o.status, o.due_date, -1 AS charges, -o.amount AS amount,
               -coalesce(CASE WHEN o.status = 'partially_paid' THEN
                   (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = o.id)
               END, 0) AS received
        FROM charges_before AS o
        UNION ALL
        SELECT n.status, n.due_date, 1, n.amount,
               coalesce(CASE WHEN n.status = 'partially_paid' THEN
                   (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = n.id)
               END, 0)
        FROM charges_after AS n
    ) AS change
    GROUP BY status, due_date
    HAVING sum(charges) <> 0 OR sum(amount) <> 0 OR sum(received) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION charge_totals_after_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT o.status, o.due_date, -count(*), -sum(o.amount),
           -coalesce(sum(CASE WHEN o.status = 'partially_paid' THEN
               (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = o.id) END), 0)
    FROM deleted_charges AS o
    GROUP BY o.status, o.due_date;
    RETURN NULL;
END
$$;

-- TRUNCATE deletes no row one by one, so it has its own trigger: nothing is left.
CREATE FUNCTION charge_totals_after_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM charge_totals;
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_totals_inserted AFTER INSERT ON charges
    REFERENCING NEW TABLE AS inserted_charges
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_insert();
CREATE TRIGGER charge_totals_updated AFTER UPDATE ON charges
    REFERENCING OLD TABLE AS charges_before NEW TABLE AS charges_after
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_update();
CREATE TRIGGER charge_totals_deleted AFTER DELETE ON charges
    REFERENCING OLD TABLE AS deleted_charges
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_delete();
CREATE TRIGGER charge_totals_truncated AFTER TRUNCATE ON charges
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_truncate();

-- Payments change `received` while their charge is partially paid. The charges are read
-- FOR SHARE: a status change committed meanwhile is seen (its UPDATE waits for us or we
-- for it), so a payment is counted exactly when its charge is partially paid at commit.
-- billing.payments already holds the charge's row lock; other writers get it here.
CREATE FUNCTION charge_totals_after_payment_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, sum(p.paid_amount)
    FROM inserted_payments AS p
    JOIN (SELECT id, status, due_date FROM charges
          WHERE id IN (SELECT charge_id FROM inserted_payments)
          ORDER BY id FOR SHARE) AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date;
    RETURN NULL;
END
$$;

CREATE FUNCTION charge_totals_after_payment_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, sum(p.paid_amount)
    FROM (SELECT charge_id, -paid_amount AS paid_amount FROM payments_before
          UNION ALL
          SELECT charge_id, paid_amount FROM payments_after) AS p
    JOIN (SELECT id, status, due_date FROM charges
          WHERE id IN (SELECT charge_id FROM payments_before
                       UNION SELECT charge_id FROM payments_after)
          ORDER BY id FOR SHARE) AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date
    HAVING sum(p.paid_amount) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION charge_totals_after_payment_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT c.status, c.due_date, 0, 0, -sum(p.paid_amount)
    FROM deleted_payments AS p
    JOIN (SELECT id, status, due_date FROM charges
          WHERE id IN (SELECT charge_id FROM deleted_payments)
          ORDER BY id FOR SHARE) AS c ON c.id = p.charge_id
    WHERE c.status = 'partially_paid'
    GROUP BY c.status, c.due_date;
    RETURN NULL;
END
$$;

-- Every payment gone: what partially paid charges had received is gone with them.
CREATE FUNCTION charge_totals_after_payment_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO charge_totals (status, due_date, charges, amount, received)
    SELECT status, due_date, 0, 0, -sum(received)
    FROM charge_totals
    GROUP BY status, due_date
    HAVING sum(received) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER charge_totals_payment_inserted AFTER INSERT ON payments
    REFERENCING NEW TABLE AS inserted_payments
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_payment_insert();
CREATE TRIGGER charge_totals_payment_updated AFTER UPDATE ON payments
    REFERENCING OLD TABLE AS payments_before NEW TABLE AS payments_after
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_payment_update();
CREATE TRIGGER charge_totals_payment_deleted AFTER DELETE ON payments
    REFERENCING OLD TABLE AS deleted_payments
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_payment_delete();
CREATE TRIGGER charge_totals_payment_truncated AFTER TRUNCATE ON payments
    FOR EACH STATEMENT EXECUTE FUNCTION charge_totals_after_payment_truncate();

-- Compactions and rebuilds take this transaction lock: two of them never interleave
-- (each would otherwise fold or replace rows the other already folded).
CREATE FUNCTION charge_totals_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS 'SELECT 7301009::bigint';

-- Fold every row into one per key, in one statement: rows committed by then are deleted
-- and their sums inserted together; rows of transactions still running are not seen,
-- stay as they are and count once they commit. Keys that add up to nothing go. Returns
-- how many rows were folded, or NULL when another compaction or rebuild holds the lock
-- (it does the same work: no need to wait for it).
CREATE FUNCTION compact_charge_totals() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(charge_totals_lock_key()) THEN
        RETURN NULL;
    END IF;
    WITH gone AS (
        DELETE FROM charge_totals
        RETURNING status, due_date, charges, amount, received
    ),
    kept AS (
        INSERT INTO charge_totals (status, due_date, charges, amount, received)
        SELECT status, due_date, sum(charges), sum(amount), sum(received)
        FROM gone
        GROUP BY status, due_date
        HAVING sum(charges) <> 0 OR sum(amount) <> 0 OR sum(received) <> 0
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END
$$;

-- The figures as a direct computation over every charge would give them: the
-- migration's fill, and a repair should a check ever find them apart. One statement, so
-- the rows it deletes and the charges it sums are those of the same moment; changes
-- still running append their rows on top, as ever. Returns the number of keys.
CREATE FUNCTION rebuild_charge_totals() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    keys bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(charge_totals_lock_key());
    -- The DELETE runs to completion whether read or not, and cannot see the rows the
    -- INSERT adds (both work on the statement's snapshot).
    WITH gone AS (
        DELETE FROM charge_totals
    ),
    direct AS (
        SELECT c.status, c.due_date, count(*) AS charges, sum(c.amount) AS amount,
               coalesce(sum(CASE WHEN c.status = 'partially_paid' THEN
                   (SELECT sum(p.paid_amount) FROM payments AS p WHERE p.charge_id = c.id)
               END), 0) AS received
        FROM charges AS c
        GROUP BY c.status, c.due_date
    ),
    kept AS (
        INSERT INTO charge_totals (status, due_date, charges, amount, received)
        SELECT status, due_date, charges, amount, received FROM direct
        RETURNING 1
    )
    SELECT count(*) INTO keys FROM kept;
    RETURN keys;
END
$$;

-- Add the charges of `relation` (a table about to be, or just, attached to `charges` as
-- a partition: ATTACH fires no trigger) to the figures, in the caller's transaction.
-- Its charges are new: no payment can reference a row before it is in `charges`, so
-- nothing was received on them. Only a table of the owner of `charges`, other than
-- `charges` itself: the application's role, which may create temporary tables, cannot
-- make figures out of rows of its own. Returns how many charges were added.
CREATE FUNCTION add_charge_totals_of(relation regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    added bigint;
BEGIN
    IF relation IS NULL OR relation = 'charges'::regclass OR NOT EXISTS (
        SELECT 1 FROM pg_class AS c
        WHERE c.oid = relation AND c.relkind = 'r' AND c.relpersistence = 'p'
          AND c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'charges'::regclass)
    ) THEN
        RAISE EXCEPTION '% is not a table of charges to add to the Overview''s figures',
            relation USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format(
        'WITH added AS ('
        '    INSERT INTO charge_totals (status, due_date, charges, amount, received)'
        '    SELECT n.status, n.due_date, count(*), sum(n.amount), 0'
        '    FROM %s AS n GROUP BY n.status, n.due_date'
        '    RETURNING charges)'
        ' SELECT coalesce(sum(charges), 0) FROM added', relation)
    INTO added;
    RETURN added;
END
$$;

SELECT rebuild_charge_totals();
