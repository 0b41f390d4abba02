-- 021: a charge is found by its debtId through charge_keys, which now holds the charge's
-- id beside the debtId; each partition of `charges` no longer has an index of its own on
-- debt_id.
--
-- charge_keys (010) already held every debtId in a unique index, which the imports' look-up
-- reads; charges_debt_id_idx held the same keys again, partition by partition, built at
-- every large import's attach (0.7 s of a 1.1M-row file's, and 62 MB a month, measured on
-- PostgreSQL 15). A search by debtId prefix, a payment reported by debtId and the API's
-- look-up go through charge_keys to the charge's primary key.

SET LOCAL maintenance_work_mem = '256MB';
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

ALTER TABLE charge_keys ADD COLUMN charge_id bigint;
-- Every key of a charge that exists (a key whose charge was archived keeps none: its debt
-- can never be billed again, and no charge is found by it).
UPDATE charge_keys AS k SET charge_id = c.id FROM charges AS c WHERE c.debt_id = k.debt_id;

CREATE OR REPLACE FUNCTION charge_keys_of_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO charge_keys (debt_id, charge_id) SELECT debt_id, id FROM inserted_charges;
    RETURN NULL;
END
$$;

-- As in 019, the file's debtIds recorded with their charges' ids.
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


DROP INDEX charges_debt_id_idx;
