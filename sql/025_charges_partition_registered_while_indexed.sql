-- 025: a large import's last steps, shared between its two connections.
--
-- Until now (024) the charges' connection built the table's indexes while the import's
-- built debtor_search's, then the import's connection alone attached the charges: ATTACH,
-- then every debtId into charge_keys, then the Overview's figures (issue 9, eighth pass;
-- PostgreSQL 15, 1.1M new debtors: 10.4 s and 7.9 s side by side, then 5.1 s on one
-- connection while the machine's other core stood idle; the debtIds alone were 2.7 s).
-- Neither charge_keys nor charge_totals needs the table attached, only its rows committed:
--
-- 1. the charges' connection adds the primary key once the rows are in and commits
--    (add_charges_partition_primary_key: an ALTER TABLE, whose lock no reader of the table
--    may hold, so it comes before the import's connection reads it);
-- 2. it then builds the other indexes and takes the statistics (index_charges_partition,
--    now without the primary key), while the import's connection reads the committed rows
--    into charge_keys and charge_totals (register_charges_partition) and attaches the new
--    debtors' search table: CREATE INDEX and ANALYZE take locks a reader does not wait for;
-- 3. the import's connection attaches the table (attach_charges_partition, now without the
--    debtIds and the figures, and only once they were registered in this transaction):
--    ATTACH finds every index built and validates the foreign keys.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

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

REVOKE EXECUTE ON FUNCTION add_charges_partition_primary_key(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION register_charges_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION attach_charges_partition(text) FROM PUBLIC;
