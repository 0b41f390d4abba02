-- 015: debtors partitioned by ranges of id, as charges are (sql/010), so a large file's new
-- debtors cost the file's rows alone and no index of `debtors` is kept row by row for them.
--
-- Until now a file's new debtors were inserted into `debtors` row by row, and each of its
-- four indexes in random order (unique governmentId, lower(email), name order, the GIN
-- word index on the folded name) cost about 2 s per 275k new debtors (bench_import
-- --debtors 1100000: 10.5x a plain COPY). Now a large import (db/loading.py) inserts its
-- new debtors into a table of their own, with no index, and attaches it before its
-- charges' partition: ATTACH PARTITION builds that table's indexes in one sorted pass each
-- and takes only SHARE UPDATE EXCLUSIVE on `debtors`, so no reader waits. Smaller imports
-- (and every other insert) go through `debtors` into its open partition.
--
-- A partitioned table cannot hold a unique index without the partition key, so
-- governmentId's uniqueness across partitions lives in debtor_keys: one row per debtor,
-- its governmentId and its id, written in the same transaction as the debtor (triggers for
-- `debtors` itself, db/loading.py for a file's partition). Imports look debtors up there:
-- one index instead of one per partition.

SET LOCAL maintenance_work_mem = '256MB';
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

-- What is there now becomes the first partition: renamed, its identity and unique
-- governmentId dropped (its other indexes and its primary key match the new parent's and
-- are attached with it, not built again).
ALTER TABLE charges DROP CONSTRAINT charges_debtor_id_fkey;
ALTER TABLE debtors RENAME TO debtors_legacy;
ALTER TABLE debtors_legacy DROP CONSTRAINT debtors_government_id_key;
ALTER TABLE debtors_legacy RENAME CONSTRAINT debtors_pkey TO debtors_legacy_pkey;
ALTER INDEX debtors_email_idx RENAME TO debtors_legacy_email_idx;
ALTER INDEX debtors_search_name_idx RENAME TO debtors_legacy_search_name_idx;
ALTER INDEX debtors_name_idx RENAME TO debtors_legacy_name_idx;

DO $$
DECLARE
    next_id bigint := greatest(
        (SELECT max(id) + 1 FROM debtors_legacy),
        (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
         FROM debtors_id_seq),
        1);
BEGIN
    ALTER TABLE debtors_legacy ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE debtors_id_seq AS bigint;
    PERFORM setval('debtors_id_seq', next_id, false);
END
$$;

CREATE TABLE debtors (
    LIKE debtors_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
) PARTITION BY RANGE (id);
ALTER TABLE debtors ALTER COLUMN id SET DEFAULT nextval('debtors_id_seq');
ALTER SEQUENCE debtors_id_seq OWNED BY debtors.id;

ALTER TABLE debtors ADD CONSTRAINT debtors_pkey PRIMARY KEY (id);
-- The same indexes as before (sql/001, 014), governmentId no longer unique per table but
-- through debtor_keys (see above); CPF prefixes are still searched on it.
CREATE INDEX debtors_government_id_idx ON debtors (government_id);
CREATE INDEX debtors_email_idx ON debtors (lower(email) COLLATE "C");
CREATE INDEX debtors_search_name_idx ON debtors
    USING gin (to_tsvector('simple'::regconfig, search_name));
CREATE INDEX debtors_name_idx ON debtors (name, id);

-- Every trigger of the old table moves to the new parent as it was written.
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
        WHERE tgrelid = 'debtors_legacy'::regclass AND NOT tgisinternal
        ORDER BY tgname
    LOOP
        EXECUTE format('DROP TRIGGER %I ON debtors_legacy', item.tgname);
        EXECUTE regexp_replace(item.definition, ' ON \S*debtors_legacy ', ' ON debtors ');
    END LOOP;
END
$$;

-- One row per debtor: the uniqueness of governmentId a partitioned table cannot hold, and
-- the id an import's charges point at.
CREATE TABLE debtor_keys (
    government_id text COLLATE "C" PRIMARY KEY,
    debtor_id bigint NOT NULL
);
INSERT INTO debtor_keys (government_id, debtor_id)
SELECT government_id, id FROM debtors_legacy ORDER BY government_id;

-- Inserts through `debtors` (its open partition: small imports, tests, tools) record their
-- keys in the same statement; a governmentId already there fails as a unique violation.
CREATE FUNCTION debtor_keys_of_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO debtor_keys (government_id, debtor_id)
    SELECT government_id, id FROM inserted_debtors ORDER BY government_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_keys_inserted AFTER INSERT ON debtors
    REFERENCING NEW TABLE AS inserted_debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_keys_of_inserted();

-- A debtor whose governmentId is corrected keeps its key in step.
CREATE FUNCTION debtor_key_of_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE debtor_keys SET government_id = NEW.government_id
    WHERE government_id = OLD.government_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_key_updated AFTER UPDATE OF government_id ON debtors
    FOR EACH ROW WHEN (NEW.government_id IS DISTINCT FROM OLD.government_id)
    EXECUTE FUNCTION debtor_key_of_updated();

CREATE FUNCTION debtor_keys_of_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM debtor_keys AS k USING deleted_debtors AS d
    WHERE k.government_id = d.government_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_keys_deleted AFTER DELETE ON debtors
    REFERENCING OLD TABLE AS deleted_debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_keys_of_deleted();

CREATE FUNCTION debtor_keys_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE debtor_keys;
    RETURN NULL;
END
$$;
CREATE TRIGGER debtors_keys_truncated AFTER TRUNCATE ON debtors
    FOR EACH STATEMENT EXECUTE FUNCTION debtor_keys_truncated();

-- The exclusive upper end of the highest partition: where the next one starts.
CREATE FUNCTION debtors_partitions_end() RETURNS bigint
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT max((regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \(''?(-?[0-9]+)''?\)'))[1]::bigint)
    FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'debtors'::regclass
$$;

-- A new, empty open partition for the ids from `first_id` on, and debtors_id_seq moved to
-- it (created apart and attached: no ACCESS EXCLUSIVE lock on `debtors`). Run by this
-- migration, with the owner's rights.
CREATE FUNCTION open_debtors_partition(first_id bigint) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    name text := 'debtors_open_' || first_id;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE debtors INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', name);
    EXECUTE format('ALTER TABLE debtors ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   name, first_id, first_id + charges_open_partition_span());
    PERFORM setval('debtors_id_seq', first_id, false);
    RETURN name;
END
$$;

-- A table for a file's new debtors, with ids from the first after every partition's, for
-- the caller (the application's role) to fill, ids included, recording each in
-- debtor_keys; then attach_debtors_partition. The caller holds the import lock
-- (db/loading.py), so no other import takes the same ids.
CREATE FUNCTION new_debtors_partition(OUT relation text, OUT first_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    first_id := debtors_partitions_end();
    relation := 'debtors_file_' || first_id;
    EXECUTE format('CREATE TABLE %I (LIKE debtors INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE)', relation);
    -- Lets ATTACH skip its scan of the rows, and refuses ids outside the range.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (id >= %s AND id < %s)',
                   relation, relation || '_ids', first_id,
                   first_id + charges_open_partition_span());
    -- Its one index while it fills, for a debtor met again in a later piece of the file:
    -- ids come in ascending order, so entries go to its right edge. Attached as the
    -- partition's part of debtors_pkey, not built again.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)',
                   relation, relation || '_pkey');
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', relation, session_user);
END
$$;

-- Attach a table filled after new_debtors_partition: its indexes are built (one sorted
-- pass each) and its statistics taken; a table left empty (a file whose debtors were all
-- known) is dropped instead. Returns how many debtors it holds.
--
-- Unlike charges (sql/010), no new open partition follows it: debtors_id_seq stays in the
-- open partition it is in, which has ids to spare, so that nothing here is left behind
-- when the import rolls back (setval is not undone by a rollback: a sequence moved to a
-- partition that was never committed would make every insert through `debtors` fail).
-- Debtors' ids then follow no time order across partitions; nothing reads them so.
CREATE FUNCTION attach_debtors_partition(relation text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    first_id bigint := substring(relation FROM '^debtors_file_([0-9]+)$')::bigint;
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
        RAISE EXCEPTION '% is not a table prepared by new_debtors_partition', relation
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', relation) INTO attached;
    IF attached = 0 THEN
        EXECUTE format('DROP TABLE %I', relation);
        RETURN 0;
    END IF;
    SET LOCAL maintenance_work_mem = '256MB';
    EXECUTE format('ALTER TABLE debtors ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   relation, first_id, end_id);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', relation, range_check);
    EXECUTE format('REVOKE ALL ON %I FROM %I', relation, session_user);
    EXECUTE format('ANALYZE %I', relation);
    RETURN attached;
END
$$;

-- The old table takes every id up to the sequence's, and an open partition the rest.
DO $$
DECLARE
    next_id bigint := nextval('debtors_id_seq');
BEGIN
    EXECUTE format('ALTER TABLE debtors ATTACH PARTITION debtors_legacy '
                   'FOR VALUES FROM (MINVALUE) TO (%s)', next_id);
    PERFORM open_debtors_partition(next_id);
END
$$;

ALTER TABLE charges ADD CONSTRAINT charges_debtor_id_fkey
    FOREIGN KEY (debtor_id) REFERENCES debtors (id);

REVOKE EXECUTE ON FUNCTION open_debtors_partition(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION new_debtors_partition() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION attach_debtors_partition(text) FROM PUBLIC;
