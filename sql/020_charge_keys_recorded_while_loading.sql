-- 020: a file's debtIds recorded in charge_keys while its pieces load, not all at attach.
--
-- attach_charges_partition (010, 019) inserted the 1.1M debtIds of a file into
-- charge_keys after its last piece: 2.1 s on an empty database, 3.3 s with 1.1M charges
-- already (PostgreSQL 15), during which the import did nothing else. An import now records
-- each piece's new debtIds as it loads it (db/loading.record_new_charge_keys), on its
-- database thread while the next rows' boletos are computed, and attach_charges_file
-- checks the partition holds exactly as many charges as debtIds were recorded. Given no
-- count (NULL), it records them itself, as before.

SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

CREATE FUNCTION attach_charges_file(relation text, recorded_keys bigint) RETURNS bigint
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
    IF recorded_keys IS NULL THEN
        EXECUTE format('INSERT INTO charge_keys (debt_id) SELECT debt_id FROM %I '
                       'ORDER BY debt_id', relation);
        GET DIAGNOSTICS attached = ROW_COUNT;
    ELSE
        -- Every charge's debtId was recorded as it loaded (a debtId charged before failed
        -- then); a count that differs means some were not, and nothing is attached.
        EXECUTE format('SELECT count(*) FROM %I', relation) INTO attached;
        IF attached <> recorded_keys THEN
            RAISE EXCEPTION '% holds % charges but % debtIds were recorded',
                relation, attached, recorded_keys;
        END IF;
    END IF;
    -- Attaching fires no trigger: the Overview's figures (migration 009) are added here.
    PERFORM add_charge_totals_of(format('%I', relation)::regclass);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', relation, range_check);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    EXECUTE format('ANALYZE %I', relation);
    -- The next open partition, created here and undone with the import; the sequence
    -- moves to it at the next import's start (charges_ids_to_open_partition, 019).
    EXECUTE format('CREATE TABLE %I (LIKE charges INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', 'charges_open_' || end_id);
    EXECUTE format('ALTER TABLE charges ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   'charges_open_' || end_id, end_id, end_id + charges_open_partition_span());
    RETURN attached;
END
$$;

-- Code that still called the old function fails at once instead of attaching a file
-- whose debtIds nobody recorded.
DROP FUNCTION attach_charges_partition(text);
REVOKE EXECUTE ON FUNCTION attach_charges_file(text, bigint) FROM PUBLIC;
