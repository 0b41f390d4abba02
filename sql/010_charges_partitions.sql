-- 010: charges partitioned by ranges of id, so a month's file costs the same whatever the
-- history holds.
--
-- Maintaining the indexes of one table row by row made each month's import slower than
-- the last (bench_growth: 27 s for the first 1.1M charges, 152 s for the fifth). Now a
-- large import (db/loading.py, BULK_LOAD_MIN_ROWS) COPYs its new charges into a table of
-- their own, with no index, and attaches it: ATTACH PARTITION builds that table's indexes
-- in one sorted pass each and takes only SHARE UPDATE EXCLUSIVE on `charges`, so readers
-- of the dashboard never wait for it, and the cost is that of the file's rows alone.
-- Smaller imports (and every other insert) go through `charges` into the open partition.
--
-- Ranges of id, not months: the primary key must contain the partition key, and with
-- `id` alone it stays the key that payments, notices and charge events point at. Ids are
-- handed out by charges_id_seq; a file's partition takes the ids after every existing
-- partition, and a new open partition follows it (id ranges are cheap: 10^9 per open one).
--
-- A partitioned table cannot hold a unique index without the partition key, so debtId's
-- uniqueness across partitions lives in charge_keys: one row per debtId ever charged,
-- written in the same transaction as the charge (a trigger for inserts through `charges`,
-- attach_charges_partition for an attached file). Imports look debtIds up there too: one
-- index instead of one per partition. Nosso números come from nosso_numero_seq, which
-- never hands out a value twice; each partition keeps them unique too.

SET LOCAL maintenance_work_mem = '256MB';
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

-- What is there now becomes the first partition: renamed, stripped of its indexes, keys
-- and triggers (the new parent's are given to it when it is attached), and attached.
ALTER TABLE charges RENAME TO charges_legacy;
ALTER TABLE notices DROP CONSTRAINT notices_charge_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_charge_id_fkey;
ALTER TABLE charge_events DROP CONSTRAINT charge_events_charge_id_fkey;
ALTER TABLE charges_legacy
    DROP CONSTRAINT charges_debt_id_key,
    DROP CONSTRAINT charges_nosso_numero_key,
    DROP CONSTRAINT charges_debtor_id_fkey,
    DROP CONSTRAINT charges_import_id_fkey,
    DROP CONSTRAINT charges_pkey;
DROP INDEX charges_import_idx, charges_pending_idx, charges_status_due_date_idx,
    charges_due_date_idx, charges_debtor_idx, charges_amount_idx;

-- The identity's sequence goes with the identity; a plain one, owned by the new parent,
-- takes over where it stood.
DO $$
DECLARE
    next_id bigint := greatest(
        (SELECT max(id) + 1 FROM charges_legacy),
        (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
         FROM charges_id_seq),
        1);
BEGIN
    ALTER TABLE charges_legacy ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE charges_id_seq AS bigint;
    PERFORM setval('charges_id_seq', next_id, false);
END
$$;

CREATE TABLE charges (
    LIKE charges_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
) PARTITION BY RANGE (id);
ALTER TABLE charges ALTER COLUMN id SET DEFAULT nextval('charges_id_seq');
ALTER SEQUENCE charges_id_seq OWNED BY charges.id;

ALTER TABLE charges
    ADD CONSTRAINT charges_pkey PRIMARY KEY (id),
    ADD CONSTRAINT charges_debtor_id_fkey FOREIGN KEY (debtor_id) REFERENCES debtors (id),
    ADD CONSTRAINT charges_import_id_fkey FOREIGN KEY (import_id) REFERENCES imports (id);
-- The same indexes as before (sql/001, 002, 005), debtId and nosso número no longer
-- unique per table but per partition (see above).
CREATE INDEX charges_debt_id_idx ON charges (debt_id);
CREATE INDEX charges_nosso_numero_idx ON charges (nosso_numero);
CREATE INDEX charges_import_idx ON charges (import_id);
CREATE INDEX charges_pending_idx ON charges (id) WHERE status = 'pending';
CREATE INDEX charges_status_due_date_idx ON charges (status, due_date) INCLUDE (amount);
CREATE INDEX charges_due_date_idx ON charges (due_date) INCLUDE (amount);
CREATE INDEX charges_debtor_idx ON charges (debtor_id) INCLUDE (amount);
CREATE INDEX charges_amount_idx ON charges (amount);

-- Every trigger of the old table moves to the new parent as it was written; row triggers
-- reach every partition from there.
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
        WHERE tgrelid = 'charges_legacy'::regclass AND NOT tgisinternal
        ORDER BY tgname
    LOOP
        EXECUTE format('DROP TRIGGER %I ON charges_legacy', item.tgname);
        EXECUTE regexp_replace(item.definition, ' ON \S*charges_legacy ', ' ON charges ');
    END LOOP;
END
$$;

-- One row per debtId ever charged: the uniqueness a partitioned table cannot hold.
CREATE TABLE charge_keys (
    debt_id text COLLATE "C" PRIMARY KEY
);
INSERT INTO charge_keys (debt_id) SELECT debt_id FROM charges_legacy ORDER BY debt_id;

-- Inserts through `charges` (the open partition: small imports, tests, tools) record
-- their debtIds in the same statement; a repeated debtId fails as a unique violation.
CREATE FUNCTION charge_keys_of_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO charge_keys (debt_id) SELECT debt_id FROM inserted_charges;
    RETURN NULL;
END
$$;
CREATE TRIGGER charges_keys_inserted AFTER INSERT ON charges
    REFERENCING NEW TABLE AS inserted_charges
    FOR EACH STATEMENT EXECUTE FUNCTION charge_keys_of_inserted();

-- Emptying charges (a test, a tool starting over) empties the keys with them.
CREATE FUNCTION charge_keys_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE charge_keys;
    RETURN NULL;
END
$$;
CREATE TRIGGER charges_keys_truncated AFTER TRUNCATE ON charges
    FOR EACH STATEMENT EXECUTE FUNCTION charge_keys_truncated();

-- A charge keeps its debtId: charge_keys could not follow a change.
CREATE FUNCTION refuse_debt_id_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'charge ' || OLD.id || ' keeps its debtId ' || OLD.debt_id,
        ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER charges_debt_id_immutable BEFORE UPDATE OF debt_id ON charges
    FOR EACH ROW WHEN (NEW.debt_id IS DISTINCT FROM OLD.debt_id)
    EXECUTE FUNCTION refuse_debt_id_change();

-- The exclusive upper end of the highest partition: where the next one starts.
CREATE FUNCTION charges_partitions_end() RETURNS bigint
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT max((regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \(''?(-?[0-9]+)''?\)'))[1]::bigint)
    FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'charges'::regclass
$$;

-- How many ids an open partition spans: far more than it will ever be given.
CREATE FUNCTION charges_open_partition_span() RETURNS bigint
LANGUAGE sql IMMUTABLE AS 'SELECT 1000000000::bigint';

-- A new, empty open partition for the ids from `first_id` on, and charges_id_seq moved
-- to it. Created apart and then attached: CREATE TABLE ... PARTITION OF would take an
-- ACCESS EXCLUSIVE lock on `charges` until the transaction ends. Run with its caller's
-- rights: the owner's, in the migration and in attach_charges_partition.
CREATE FUNCTION open_charges_partition(first_id bigint) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    name text := 'charges_open_' || first_id;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE charges INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', name);
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   name, first_id, first_id + charges_open_partition_span());
    PERFORM setval('charges_id_seq', first_id, false);
    RETURN name;
END
$$;

-- A table for a file's new charges, with ids from the first after every partition's (as
-- many as an open partition spans: a file's count is known only once it is read), for the
-- caller (the application's role, which owns no table) to COPY into, ids included; then
-- attach_charges_partition. The caller holds the import lock (db/loading.py), so no other
-- import takes the same ids.
CREATE FUNCTION new_charges_partition(OUT relation text, OUT first_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    first_id := charges_partitions_end();
    relation := 'charges_file_' || first_id;
    EXECUTE format('CREATE TABLE %I (LIKE charges INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', relation);
    -- Lets ATTACH skip its scan of the rows, and refuses ids outside the range.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (id >= %s AND id < %s)',
                   relation, relation || '_ids', first_id,
                   first_id + charges_open_partition_span());
    EXECUTE format('GRANT SELECT, INSERT ON %I TO %I', relation, session_user);
END
$$;

-- Attach a table filled after new_charges_partition: its indexes and keys are built (one
-- sorted pass each), its debtIds recorded in charge_keys (a debtId charged before fails
-- the whole import), its charges added to the Overview's figures, its statistics taken,
-- and a new open partition follows it. Returns how many charges it holds.
CREATE FUNCTION attach_charges_partition(relation text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    first_id bigint := substring(relation FROM '^charges_file_([0-9]+)$')::bigint;
    range_check text := relation || '_ids';
    end_id bigint;
    attached bigint;
BEGIN
    SELECT (regexp_match(pg_get_constraintdef(k.oid), 'id < \(?''?([0-9]+)'))[1]::bigint
    INTO end_id
    FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
    WHERE c.relname = relation AND NOT c.relispartition AND k.conname = range_check
      AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema());
    IF first_id IS NULL OR end_id IS NULL THEN
        RAISE EXCEPTION '% is not a table prepared by new_charges_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   relation, first_id, end_id);
    EXECUTE format('INSERT INTO charge_keys (debt_id) SELECT debt_id FROM %I ORDER BY debt_id',
                   relation);
    GET DIAGNOSTICS attached = ROW_COUNT;
    -- Attaching fires no trigger: the Overview's figures (migration 009) are added here.
    PERFORM add_charge_totals_of(format('%I', relation)::regclass);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', relation, range_check);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    EXECUTE format('ANALYZE %I', relation);
    PERFORM open_charges_partition(end_id);
    RETURN attached;
END
$$;

-- The old table takes every id up to the sequence's, and an open partition the rest.
DO $$
DECLARE
    next_id bigint := nextval('charges_id_seq');
BEGIN
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION charges_legacy '
                   'FOR VALUES FROM (MINVALUE) TO (%s)', next_id);
    PERFORM open_charges_partition(next_id);
END
$$;

ALTER TABLE notices ADD CONSTRAINT notices_charge_id_fkey
    FOREIGN KEY (charge_id) REFERENCES charges (id) ON DELETE CASCADE;
ALTER TABLE payments ADD CONSTRAINT payments_charge_id_fkey
    FOREIGN KEY (charge_id) REFERENCES charges (id);
ALTER TABLE charge_events ADD CONSTRAINT charge_events_charge_id_fkey
    FOREIGN KEY (charge_id) REFERENCES charges (id);

-- Nothing drops and rebuilds indexes any more (migration 008 did it for large loads into
-- empty tables, under locks that held every reader for a whole import): `charges` gets a
-- partition per large file, and `debtors` keeps its indexes, maintained row by row.
DROP FUNCTION drop_secondary_indexes(text);
DROP FUNCTION restore_secondary_indexes(text, boolean);
DROP TABLE bulk_load_indexes;
DROP FUNCTION bulk_load_indexes_restored();

REVOKE EXECUTE ON FUNCTION open_charges_partition(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION new_charges_partition() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION attach_charges_partition(text) FROM PUBLIC;
