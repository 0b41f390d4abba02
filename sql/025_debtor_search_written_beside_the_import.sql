-- 025: a large import's new debtors' search rows are written beside it, and the end of the
-- import is shared between three connections.
--
-- Until now (020, 024) the search rows of a large file's new debtors were written by the
-- debtors' insert trigger into a table the import's transaction created, and that table's
-- indexes were built on the import's connection while the charges' connection built the
-- charges'; then the import's connection alone attached the charges (every debtId into
-- charge_keys, the Overview's figures) while the machine's other core stood idle (issue 9,
-- eighth pass; PostgreSQL 15, 1.1M new debtors: 10.4 s and 7.9 s side by side, then 5.1 s
-- alone). The import's connection is also what every piece waits for: the trigger's copy
-- of the inserted rows and its insert were 0.1-0.2 s of every 135,000 debtors.
--
-- Now, for a large import:
-- 1. the charges' connection creates the search table beside the charges' table
--    (new_debtor_search_partition, no longer tied to the import's transaction) and COPYs
--    into it each piece's new debtors as the import inserts them (the client has their
--    ids from the insert, their names and e-mails from the file); the import's transaction
--    tells the insert trigger so (billing.debtor_search_by_import), which then writes none;
-- 2. once the rows are in, the charges' connection adds the charges' primary key and
--    commits both tables (not attached: no reader sees them);
-- 3. then, side by side: the charges' connection builds their other indexes
--    (index_charges_partition, now without the primary key), a third connection builds the
--    search table's (index_debtor_search_partition), and the import's connection reads the
--    committed charges into charge_keys and charge_totals (register_charges_partition);
-- 4. the import's connection attaches both (ATTACH finds every index built; the charges'
--    only once registered in this transaction), and brings the search rows of debtors it
--    inserted and then renamed in a later piece up to date.
-- An import that fails after step 2 drops both tables; one whose process died leaves them,
-- and the next large import drops every such table under the import lock.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

-- New debtors are searchable at once (the open partition), unless this transaction's
-- import writes their search rows itself.
CREATE OR REPLACE FUNCTION debtor_search_of_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('billing.debtor_search_by_import', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO debtor_search (debtor_id, name, search_name, email)
        SELECT id, name, search_name, email FROM inserted_debtors;
    END IF;
    RETURN NULL;
END
$$;

-- A debtor renamed or given another e-mail is found by the new ones at once (a large
-- import's own debtors, in a table not attached yet, are brought up to date when it is:
-- db/loading.py refresh_debtor_search).
CREATE OR REPLACE FUNCTION debtor_search_of_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE debtor_search AS s
    SET name = n.name, search_name = n.search_name, email = n.email
    FROM updated_debtors AS n
    WHERE s.debtor_id = n.id
      AND (s.name, s.search_name, s.email) IS DISTINCT FROM (n.name, n.search_name, n.email);
    RETURN NULL;
END
$$;

-- Whether `relation` is a table new_debtor_search_partition made that is not attached.
CREATE FUNCTION is_debtor_search_partition_not_attached(relation text) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT EXISTS (
        SELECT FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        WHERE c.relname = relation AND c.relname ~ '^debtor_search_[0-9]+$'
          AND NOT c.relispartition AND k.conname = relation || '_batch'
          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    )
$$;

-- A table for a large import's new debtors' search rows, with no index while it fills;
-- returns its batch number. Created on the charges' connection, in its transaction, so
-- that COPY can write it frozen.
CREATE OR REPLACE FUNCTION new_debtor_search_partition() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    batch constant bigint := nextval('debtor_search_batch_seq');
    relation constant text := 'debtor_search_' || batch;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE debtor_search INCLUDING DEFAULTS)', relation);
    -- Lets ATTACH skip its scan of the rows, and names the table as one of these.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (batch = %s)',
                   relation, relation || '_batch', batch);
    EXECUTE format('GRANT SELECT, INSERT ON %I TO %I', relation, session_user);
    RETURN batch;
END
$$;

-- Every index of debtor_search built on the table new_debtor_search_partition made for
-- `batch` (as written on debtor_search, so an index added there later is built here too),
-- and its statistics taken.
CREATE FUNCTION index_debtor_search_partition(batch bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation constant text := 'debtor_search_' || batch;
    definition text;
BEGIN
    IF NOT is_debtor_search_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_debtor_search_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    FOR definition IN
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i
        WHERE i.indrelid = 'debtor_search'::regclass
        ORDER BY i.indexrelid
    LOOP
        EXECUTE regexp_replace(definition, '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ',
                               format('CREATE \1INDEX ON %I ', relation));
    END LOOP;
    EXECUTE format('ANALYZE %I', relation);
END
$$;

-- Attach the table index_debtor_search_partition indexed; returns how many rows it holds.
CREATE OR REPLACE FUNCTION attach_debtor_search_partition(batch bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation constant text := 'debtor_search_' || batch;
    attached bigint;
BEGIN
    IF NOT is_debtor_search_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_debtor_search_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE debtor_search ATTACH PARTITION %I FOR VALUES IN (%s)',
                   relation, batch);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    IF NOT EXISTS (SELECT FROM pg_statistic
                   WHERE starelid = format('%I', relation)::regclass) THEN
        EXECUTE format('ANALYZE %I', relation);
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', relation) INTO attached;
    RETURN attached;
END
$$;

-- An unattached table new_debtor_search_partition made, dropped: an import that failed
-- after its charges' connection committed it.
CREATE FUNCTION drop_debtor_search_partition_not_attached(batch bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF is_debtor_search_partition_not_attached('debtor_search_' || batch) THEN
        EXECUTE format('DROP TABLE %I', 'debtor_search_' || batch);
    END IF;
END
$$;

-- As drop_charges_partitions_left_behind (024), for both kinds of table now: every
-- unattached one a large import made, dropped; returns how many. Only under the import
-- lock: no import is running, so every such table was left by one that died.
CREATE OR REPLACE FUNCTION drop_charges_partitions_left_behind() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation text;
    dropped integer := 0;
BEGIN
    FOR relation IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relkind = 'r'
          AND (c.relname ~ '^charges_file_[0-9]+$' OR c.relname ~ '^debtor_search_[0-9]+$')
          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    LOOP
        IF is_charges_partition_not_attached(relation)
           OR is_debtor_search_partition_not_attached(relation) THEN
            EXECUTE format('DROP TABLE %I', relation);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

-- The charges' primary key, added once the rows are in and before the table is committed
-- (an ALTER TABLE, whose lock no reader of the table may hold).
CREATE FUNCTION add_charges_partition_primary_key(relation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT is_charges_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_charges_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id)', relation);
END
$$;

-- As in 024, but the primary key is add_charges_partition_primary_key's.
CREATE OR REPLACE FUNCTION index_charges_partition(relation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    definition text;
BEGIN
    IF NOT is_charges_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_charges_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    FOR definition IN
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i
        WHERE i.indrelid = 'charges'::regclass AND NOT i.indisprimary
        ORDER BY i.indexrelid
    LOOP
        EXECUTE regexp_replace(definition, '^CREATE INDEX \S+ ON ONLY \S+ ',
                               format('CREATE INDEX ON %I ', relation));
    END LOOP;
    EXECUTE format('ANALYZE %I', relation);
END
$$;

-- The debtIds of a committed, unattached table new_charges_partition made, kept in
-- charge_keys (in debtId order: the index is walked forward), and its charges added to
-- the Overview's figures; returns how many. Marks this transaction as having done so for
-- that table: attach_charges_partition attaches no other.
CREATE FUNCTION register_charges_partition(relation text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    registered bigint;
BEGIN
    IF NOT is_charges_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_charges_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('INSERT INTO charge_keys (debt_id, charge_id) '
                   'SELECT debt_id, id FROM %I ORDER BY debt_id', relation);
    GET DIAGNOSTICS registered = ROW_COUNT;
    -- Attaching fires no trigger: the Overview's figures (migration 009) are added here.
    PERFORM add_charge_totals_of(format('%I', relation)::regclass);
    PERFORM set_config('billing.charges_partition_registered', relation, true);
    RETURN registered;
END
$$;

-- As in 024, but the debtIds and the figures are register_charges_partition's, which
-- must have run in this transaction for this very table.
DROP FUNCTION attach_charges_partition(text);
CREATE FUNCTION attach_charges_partition(relation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    first_id bigint := substring(relation FROM '^charges_file_([0-9]+)$')::bigint;
    range_check text := relation || '_ids';
    end_id bigint;
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
    IF current_setting('billing.charges_partition_registered', true) IS DISTINCT FROM relation
    THEN
        RAISE EXCEPTION '% was not registered (register_charges_partition) before its attach',
            relation USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   relation, first_id, end_id);
    PERFORM set_config('billing.charges_partition_registered', '', true);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', relation, range_check);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    IF NOT EXISTS (SELECT FROM pg_statistic
                   WHERE starelid = format('%I', relation)::regclass) THEN
        EXECUTE format('ANALYZE %I', relation);
    END IF;
    -- The next open partition, created here and undone with the import; the sequence
    -- moves to it at the next import's start (charges_ids_to_open_partition).
    EXECUTE format('CREATE TABLE %I (LIKE charges INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', 'charges_open_' || end_id);
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   'charges_open_' || end_id, end_id, end_id + charges_open_partition_span());
END
$$;

REVOKE EXECUTE ON FUNCTION index_debtor_search_partition(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_debtor_search_partition_not_attached(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION add_charges_partition_primary_key(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION register_charges_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION attach_charges_partition(text) FROM PUBLIC;
