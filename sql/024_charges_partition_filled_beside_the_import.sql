-- 024: a large file's charges are copied, and their table indexed, on a connection of
-- their own, beside the import's.
--
-- Until now the import's one connection did everything in turn: for each piece the
-- debtors' upsert, then the charges' COPY; at the end the debtors' search table's indexes,
-- then the charges' (issue 9, seventh pass; PostgreSQL 15, 1.1M new debtors: 17.8 s of
-- pieces, then 5.4 s and 8.0 s of attaching). The charges' table depends on nothing the
-- import's transaction holds until it is attached: a second connection creates it
-- (new_charges_partition, 010), COPYs each piece's charges into it while the import's
-- connection upserts the next piece's debtors, and builds its indexes
-- (index_charges_partition, below) while the import's connection builds debtor_search's,
-- then commits. The import's transaction attaches it as before: ATTACH PARTITION finds
-- every index it needs already built and only validates the foreign keys (the charges'
-- debtors are the import's own, still uncommitted, rows), then charge_keys, the Overview's
-- figures and the statistics (attach_charges_partition, 021).
--
-- Between that commit and the import's, the table exists committed and unattached: no
-- reader of `charges` sees it. An import that fails after it drops it
-- (drop_charges_partition_not_attached); one whose process died leaves it, and the next
-- large import drops every such table before it creates its own (under the import lock,
-- so none of them belongs to an import still running).

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

-- Whether `relation` is a table new_charges_partition made that is not attached (yet).
CREATE FUNCTION is_charges_partition_not_attached(relation text) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT EXISTS (
        SELECT FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        WHERE c.relname = relation AND c.relname ~ '^charges_file_[0-9]+$'
          AND NOT c.relispartition AND k.conname = relation || '_ids'
          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    )
$$;

-- Every index of `charges` built on a table new_charges_partition made (one sorted pass
-- each, the parallel workers the server allows), so that ATTACH PARTITION finds them: the
-- primary key as a constraint (ATTACH matches a constraint's index only with one), the
-- others as written on `charges` (pg_get_indexdef), so an index added to `charges` later
-- is built here too. Its statistics are taken here as well, beside the import (they stay
-- with the table once attached).
CREATE FUNCTION index_charges_partition(relation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    definition text;
BEGIN
    IF NOT is_charges_partition_not_attached(relation) THEN
        RAISE EXCEPTION '% is not a table prepared by new_charges_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id)', relation);
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

-- An unattached table new_charges_partition made, dropped: an import that failed after
-- its charges' connection committed it.
CREATE FUNCTION drop_charges_partition_not_attached(relation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF is_charges_partition_not_attached(relation) THEN
        EXECUTE format('DROP TABLE %I', relation);
    END IF;
END
$$;

-- Every unattached table new_charges_partition made, dropped; returns how many. Only
-- while holding the import lock (db/loading.py): no import is running, so every such
-- table was left by one that died.
CREATE FUNCTION drop_charges_partitions_left_behind() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation text;
    dropped integer := 0;
BEGIN
    FOR relation IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relkind = 'r' AND c.relname ~ '^charges_file_[0-9]+$'
          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    LOOP
        IF is_charges_partition_not_attached(relation) THEN
            EXECUTE format('DROP TABLE %I', relation);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

-- As in 021, but the statistics are taken only if index_charges_partition has not.
CREATE OR REPLACE FUNCTION attach_charges_partition(relation text) RETURNS bigint
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
    EXECUTE format('INSERT INTO charge_keys (debt_id, charge_id) '
                   'SELECT debt_id, id FROM %I ORDER BY debt_id', relation);
    GET DIAGNOSTICS attached = ROW_COUNT;
    -- Attaching fires no trigger: the Overview's figures (migration 009) are added here.
    PERFORM add_charge_totals_of(format('%I', relation)::regclass);
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
    RETURN attached;
END
$$;

REVOKE EXECUTE ON FUNCTION index_charges_partition(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_charges_partition_not_attached(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_charges_partitions_left_behind() FROM PUBLIC;
