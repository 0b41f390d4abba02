-- 020: how debtors are found (name words, e-mail, name order) moves to debtor_search,
-- partitioned by the file that brought them, so a large file's new debtors get those
-- indexes built in one sorted pass each instead of row by row.
--
-- Measured (issue 9, sixth pass; embedded PostgreSQL, a file of 1.1M new debtors): the
-- import took 24.2-29.7 s with debtors' three search indexes kept row by row, 14.8 s
-- without them; built in bulk on the same rows they take about 2.5 s (e-mail 0.6 s, name
-- order 0.9 s, words 1.0 s). The rows were inserted in governmentId order, so each of
-- them landed at a random place of the e-mail and name indexes: 4-6 microseconds a row
-- each, whatever the server's memory.
--
-- debtors keeps what identifies a debtor (its id, its unique governmentId, its name and
-- e-mail as the last file gave them); debtor_search holds one row per debtor, kept equal
-- to it by the triggers below, with the three indexes a search or the Debtors page reads.
-- `batch` 0 is the open partition (debtors added row by row: small files, tests, tools);
-- a large import's new debtors go into a table of their own (new_debtor_search_partition),
-- attached when the import ends (attach_debtor_search_partition): ATTACH takes SHARE
-- UPDATE EXCLUSIVE on debtor_search, so no reader and no writer of a row waits for it.

SET LOCAL maintenance_work_mem = '256MB';
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

CREATE TABLE debtor_search (
    batch bigint NOT NULL DEFAULT 0,
    debtor_id bigint NOT NULL,
    name text NOT NULL,
    search_name text NOT NULL,
    email text NOT NULL
) PARTITION BY LIST (batch);
CREATE TABLE debtor_search_open PARTITION OF debtor_search FOR VALUES IN (0);

INSERT INTO debtor_search (debtor_id, name, search_name, email)
SELECT id, name, search_name, email FROM debtors;

-- Built once the rows are in (one sorted pass each), on every partition.
CREATE INDEX debtor_search_debtor_idx ON debtor_search (debtor_id);
CREATE INDEX debtor_search_name_idx ON debtor_search (name, debtor_id);
CREATE INDEX debtor_search_email_idx ON debtor_search (lower(email) COLLATE "C");
CREATE INDEX debtor_search_words_idx ON debtor_search
    USING gin (to_tsvector('simple'::regconfig, search_name));

DROP INDEX debtors_email_idx, debtors_search_name_idx, debtors_name_idx;

-- New debtors: into the open partition, or into the table new_debtor_search_partition
-- made for this transaction's large import (named in billing.debtor_search_batch).
CREATE FUNCTION debtor_search_of_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    batch bigint := nullif(current_setting('billing.debtor_search_batch', true), '')::bigint;
BEGIN
    IF batch IS NULL THEN
        INSERT INTO debtor_search (debtor_id, name, search_name, email)
        SELECT id, name, search_name, email FROM inserted_debtors;
    ELSE
        EXECUTE format('INSERT INTO %I (batch, debtor_id, name, search_name, email) '
                       'SELECT $1, id, name, search_name, email FROM inserted_debtors',
                       'debtor_search_' || batch)
        USING batch;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_search_inserted AFTER INSERT ON debtors
    REFERENCING NEW TABLE AS inserted_debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_search_of_inserted();

-- A debtor renamed or given another e-mail is found by the new ones at once, in whichever
-- partition it is (and in the large import's own table, not yet attached).
CREATE FUNCTION debtor_search_of_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    batch bigint := nullif(current_setting('billing.debtor_search_batch', true), '')::bigint;
    refresh constant text :=
        'UPDATE %I AS s SET name = n.name, search_name = n.search_name, email = n.email '
        'FROM updated_debtors AS n WHERE s.debtor_id = n.id '
        'AND (s.name, s.search_name, s.email) IS DISTINCT FROM (n.name, n.search_name, n.email)';
BEGIN
    IF NOT EXISTS (SELECT FROM updated_debtors) THEN
        RETURN NULL;  -- an import's piece with no debtor changed
    END IF;
    EXECUTE format(refresh, 'debtor_search');
    IF batch IS NOT NULL THEN
        EXECUTE format(refresh, 'debtor_search_' || batch);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_search_updated AFTER UPDATE ON debtors
    REFERENCING NEW TABLE AS updated_debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_search_of_updated();

CREATE FUNCTION debtor_search_of_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM debtor_search WHERE debtor_id IN (SELECT id FROM deleted_debtors);
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_search_deleted AFTER DELETE ON debtors
    REFERENCING OLD TABLE AS deleted_debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_search_of_deleted();

CREATE FUNCTION debtor_search_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE debtor_search;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_search_truncated AFTER TRUNCATE ON debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_search_truncated();

-- Batches are numbered by a sequence of their own: never twice, even when the tables are
-- emptied (tests, tools) and the partitions stay.
CREATE SEQUENCE debtor_search_batch_seq AS bigint;

-- A table for a large import's new debtors, with no index while it fills; this
-- transaction's inserts into debtors go there (debtor_search_of_inserted). Returns its
-- batch number, for attach_debtor_search_partition.
CREATE FUNCTION new_debtor_search_partition() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    batch constant bigint := nextval('debtor_search_batch_seq');
    relation constant text := 'debtor_search_' || batch;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE debtor_search INCLUDING DEFAULTS)', relation);
    -- Lets ATTACH skip its scan of the rows.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (batch = %s)',
                   relation, relation || '_batch', batch);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', relation, session_user);
    PERFORM set_config('billing.debtor_search_batch', batch::text, true);
    RETURN batch;
END
$$;

-- Attach the table new_debtor_search_partition made: its indexes are built (one sorted
-- pass each), its statistics taken; later inserts into debtors go to the open partition.
CREATE FUNCTION attach_debtor_search_partition(batch bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation constant text := 'debtor_search_' || batch;
    attached bigint;
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
        WHERE c.relname = relation AND NOT c.relispartition AND k.conname = relation || '_batch'
          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    ) THEN
        RAISE EXCEPTION '% is not a table prepared by new_debtor_search_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE debtor_search ATTACH PARTITION %I FOR VALUES IN (%s)',
                   relation, batch);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    EXECUTE format('ANALYZE %I', relation);
    EXECUTE format('SELECT count(*) FROM %I', relation) INTO attached;
    PERFORM set_config('billing.debtor_search_batch', '', true);
    RETURN attached;
END
$$;
