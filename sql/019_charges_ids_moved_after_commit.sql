-- 019: charges_id_seq moved to a new open partition only once that partition is committed.
--
-- attach_charges_partition (010) created the open partition that follows a file's and
-- moved charges_id_seq to it in the import's transaction. setval is not undone by a
-- rollback: an import cut short after its attach (the process killed, the connection
-- lost, a refusal after the load) left the sequence pointing at ids no partition holds,
-- and every insert through `charges` failed until a later large import succeeded. Now
-- attach only creates the next open partition (in the transaction, undone with it), and
-- each import moves the sequence there at its start, under the import lock
-- (charges_ids_to_open_partition, db/loading.lock_imports): by then the partition exists
-- for good, so the sequence never points outside every partition. A sequence left
-- stranded by the old attach is put back the same way.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

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
    EXECUTE format('INSERT INTO charge_keys (debt_id) SELECT debt_id FROM %I ORDER BY debt_id',
                   relation);
    GET DIAGNOSTICS attached = ROW_COUNT;
    -- Attaching fires no trigger: the Overview's figures (migration 009) are added here.
    PERFORM add_charge_totals_of(format('%I', relation)::regclass);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', relation, range_check);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    EXECUTE format('ANALYZE %I', relation);
    -- The next open partition, created here and undone with the import; the sequence
    -- moves to it at the next import's start (charges_ids_to_open_partition).
    EXECUTE format('CREATE TABLE %I (LIKE charges INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', 'charges_open_' || end_id);
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   'charges_open_' || end_id, end_id, end_id + charges_open_partition_span());
    RETURN attached;
END
$$;

-- Where the next charge's id should come from: the newest partition (the open one that
-- follows the last file attached), after the ids it already holds. Moves charges_id_seq
-- there when it is behind it, or past every partition (left so by the old attach).
-- Called by each import under the import lock, before it inserts a charge.
CREATE FUNCTION charges_ids_to_open_partition() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    newest regclass;
    newest_from bigint;
    next_id bigint;
    target bigint;
BEGIN
    SELECT c.oid::regclass,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'FROM \(''?(-?[0-9]+)''?\)'))[1]::bigint
    INTO newest, newest_from
    FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'charges'::regclass
    ORDER BY 2 DESC NULLS LAST
    LIMIT 1;
    IF newest_from IS NULL THEN
        RETURN;  -- only the legacy partition (FROM MINVALUE): nothing to move
    END IF;
    SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
    INTO next_id FROM charges_id_seq;
    IF next_id >= newest_from AND next_id < charges_partitions_end() THEN
        RETURN;  -- already there
    END IF;
    EXECUTE format('SELECT coalesce(max(id) + 1, %s) FROM %s', newest_from, newest)
    INTO target;
    PERFORM setval('charges_id_seq', greatest(target, newest_from), false);
END
$$;

-- Nothing else calls the old helper that moved the sequence in the transaction.
DROP FUNCTION open_charges_partition(bigint);

-- A sequence the old attach left past every partition, or behind the newest, put back now.
SELECT charges_ids_to_open_partition();
