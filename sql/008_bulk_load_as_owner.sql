-- 008: a large import rebuilds indexes without the application owning the tables.
--
-- A load at least as large as the table drops its secondary indexes and unique/foreign
-- keys, COPYs, and recreates them in sorted passes (db/loading.py). Dropping and creating
-- indexes is the owner's right, which the application's role does not have: these two
-- functions do it for it, as the owner (SECURITY DEFINER), for the tables an import
-- fills only. What is rebuilt is what the catalog held before the drop, recorded here by
-- the first function and read back by the second: never a definition from the caller.
-- Both run inside the import's transaction, so a failure rolls back to the original
-- indexes and leaves no record behind.

-- The functions resolve names in this schema and then pg_temp, never a caller's
-- temporary table first: SET search_path FROM CURRENT below keeps this setting.
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);

-- Owner-only (the application's role is granted nothing on it, see db/roles.py).
CREATE TABLE bulk_load_indexes (
    table_name text NOT NULL,
    position integer NOT NULL,  -- the order of recreation: indexes, unique keys, foreign keys
    kind text NOT NULL CHECK (kind IN ('index', 'constraint')),
    name text NOT NULL,  -- an index as regclass text (quoted as needed), a key's own name
    definition text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, position)
);
CREATE TRIGGER bulk_load_indexes_updated_at BEFORE UPDATE ON bulk_load_indexes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- What was dropped must be back before the transaction commits: checked at commit, so the
-- application's role can never leave a table without its keys by calling only the first
-- function. (SET CONSTRAINTS ... IMMEDIATE merely fails sooner.)
-- As the owner: at commit, the session's role (the application's) may not read the record.
CREATE FUNCTION bulk_load_indexes_restored() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM bulk_load_indexes
               WHERE table_name = NEW.table_name AND position = NEW.position) THEN
        RAISE EXCEPTION 'the indexes and keys of % dropped for a bulk load were not rebuilt',
            NEW.table_name USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER bulk_load_indexes_restored AFTER INSERT ON bulk_load_indexes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bulk_load_indexes_restored();

-- Drop `target`'s secondary indexes and unique/foreign keys (the primary key stays, so
-- rows elsewhere keep their foreign keys), recording their definitions; return how many.
-- The caller holds an ACCESS EXCLUSIVE lock on the table (LOCK TABLE) and the import lock.
CREATE FUNCTION drop_secondary_indexes(target text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation regclass;
    item record;
    dropped integer := 0;
BEGIN
    IF target IS NULL OR target NOT IN ('charges', 'debtors') THEN
        RAISE EXCEPTION 'indexes of % are not dropped for bulk loads', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    relation := quote_ident(target)::regclass;
    IF EXISTS (SELECT 1 FROM bulk_load_indexes WHERE table_name = target) THEN
        RAISE EXCEPTION 'the indexes of % are already dropped for a bulk load', target;
    END IF;
    INSERT INTO bulk_load_indexes (table_name, position, kind, name, definition)
    SELECT target, row_number() OVER (ORDER BY d.rank, d.name), d.kind, d.name, d.definition
    FROM (
        SELECT 1 AS rank, 'index' AS kind, i.indexrelid::regclass::text AS name,
               pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index AS i
        WHERE i.indrelid = relation AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = i.indexrelid)
        UNION ALL
        SELECT CASE k.contype WHEN 'u' THEN 2 ELSE 3 END, 'constraint', k.conname::text,
               pg_get_constraintdef(k.oid)
        FROM pg_constraint AS k
        WHERE k.conrelid = relation AND k.contype IN ('u', 'f')
    ) AS d;
    -- Foreign keys first, then unique keys, then plain indexes: the reverse of creation.
    FOR item IN
        SELECT kind, name FROM bulk_load_indexes WHERE table_name = target
        ORDER BY position DESC
    LOOP
        IF item.kind = 'constraint' THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', relation, item.name);
        ELSE
            EXECUTE format('DROP INDEX %s', item.name);
        END IF;
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END;
$$;

-- Recreate what drop_secondary_indexes(target) dropped, then forget it; with
-- refresh_statistics, ANALYZE the table for the queries later in the same transaction.
-- Return how many indexes and keys were recreated.
CREATE FUNCTION restore_secondary_indexes(target text, refresh_statistics boolean)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    relation regclass;
    item record;
    restored integer := 0;
BEGIN
    IF target IS NULL OR target NOT IN ('charges', 'debtors') THEN
        RAISE EXCEPTION 'indexes of % are not rebuilt after bulk loads', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    relation := quote_ident(target)::regclass;
    FOR item IN
        SELECT kind, name, definition FROM bulk_load_indexes WHERE table_name = target
        ORDER BY position
    LOOP
        IF item.kind = 'constraint' THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', relation, item.name,
                           item.definition);
        ELSE
            EXECUTE item.definition;
        END IF;
        restored := restored + 1;
    END LOOP;
    DELETE FROM bulk_load_indexes WHERE table_name = target;
    IF refresh_statistics THEN
        EXECUTE format('ANALYZE %s', relation);
    END IF;
    RETURN restored;
END;
$$;

-- Only the application's role may call them (granted by db/roles.py), not every role.
REVOKE EXECUTE ON FUNCTION drop_secondary_indexes(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION restore_secondary_indexes(text, boolean) FROM PUBLIC;
