"""Least privilege: the application's role reads and writes rows, and nothing more.

`engine` and `db` connect as that role (see conftest), so the rest of the suite shows it
can do its work; these tests show what it cannot do, and that the import's fast path (a
load at least as large as the table drops and rebuilds indexes) works without owning.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Connection, Engine, event, make_url, text
from sqlalchemy.exc import DBAPIError

from billing.core.errors import OperatorError
from billing.core.settings import get_settings
from db import loading
from db.engine import make_engine, url_as
from db.migrations import migrate, migrate_database
from db.roles import main as create_role_main
from tests.support.database import scalar, schema_of
from tests.support.debtor_files import debtor_csv, run_import, sample_rows

_SCHEMA_TABLES = """
SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename
"""


def _refused(conn: Connection, statement: str) -> str:
    """Run `statement` in a savepoint; return the server's refusal (the test fails if none)."""
    with pytest.raises(DBAPIError) as refused, conn.begin_nested():
        conn.exec_driver_sql(statement)
    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege), statement
    return str(refused.value.orig)


def _tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(_SCHEMA_TABLES)).scalars())


def test_the_application_role_owns_nothing(db: Engine) -> None:
    with db.connect() as conn:
        owned = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid "
                "        AND relpersistence <> 't'), "
                "       (SELECT count(*) FROM pg_proc WHERE proowner = r.oid), "
                "       (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid "
                "        AND nspname NOT LIKE 'pg\\_temp\\_%' "
                "        AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'), "
                "       r.rolsuper, r.rolcreaterole, r.rolcreatedb "
                "FROM pg_roles AS r WHERE r.rolname = current_user"
            )
        ).one()
    assert tuple(owned) == (0, 0, 0, False, False, False)


def test_the_application_role_cannot_drop_alter_or_truncate_any_table(db: Engine) -> None:
    tables = _tables(db)
    assert {"charges", "debtors", "imports", "schema_migrations", "charge_keys"} <= set(tables)
    with db.connect() as conn:
        for table in tables:
            assert "must be owner" in _refused(conn, f"DROP TABLE {table}")
            assert "must be owner" in _refused(conn, f"ALTER TABLE {table} ADD COLUMN x int")
            assert "permission denied" in _refused(conn, f"TRUNCATE {table}")
        _refused(conn, "DROP INDEX charges_due_date_idx")
        _refused(conn, "CREATE TABLE mine (id int)")
        _refused(conn, "DROP FUNCTION set_updated_at() CASCADE")


def test_the_application_role_may_only_add_to_the_audit_trail(db: Engine) -> None:
    if "audit_events" not in _tables(db):
        pytest.skip("audit_events does not exist yet (migration 007)")
    with db.connect() as conn:
        held = conn.execute(
            text(
                "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', "
                "'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p "
                "WHERE has_table_privilege('audit_events', p)"
            )
        ).scalars()
        assert set(held) == {"SELECT", "INSERT"}
        with conn.begin_nested():  # rolled back with the test's transaction: nothing stays
            conn.execute(
                text("INSERT INTO audit_events (actor, action) VALUES ('test', 'test.role')")
            )
        for statement in (
            "UPDATE audit_events SET actor = 'someone else'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            # The privilege refuses first, before the table's append-only trigger.
            assert "permission denied for table audit_events" in _refused(conn, statement)
        _refused(conn, "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), 1)")


def test_a_partition_is_prepared_and_attached_only_as_the_functions_allow(db: Engine) -> None:
    with db.connect() as conn:
        message = _refused(conn, "SELECT attach_charges_partition('debtors')")
        assert "not a table prepared by new_charges_partition" in message
        _refused(conn, "CREATE TABLE charges_file_9 (LIKE charges)")  # owns no table


@pytest.fixture()
def statements(db: Engine) -> Iterator[list[str]]:
    """Every statement the application's engine sends while the test runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    event.listen(db, "before_cursor_execute", record)
    yield sent
    event.remove(db, "before_cursor_execute", record)


def _rows(start: int, stop: int) -> list[tuple[str, ...]]:
    return [
        (*row[:1], f"{i:08d}", *row[2:])
        for i, row in enumerate(sample_rows(stop - start, start=start), start)
    ]


def _maintenance_counts(db: Engine, table: str) -> tuple[int, int]:
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT vacuum_count + autovacuum_count, analyze_count + autoanalyze_count "
                "FROM pg_stat_user_tables WHERE relname = :table"
            ),
            {"table": table},
        ).one()
    return row[0], row[1]


def test_the_application_role_imports_large_files_without_locking_out_readers(
    db: Engine, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "BULK_LOAD_MIN_ROWS", 10)
    before = {table: schema_of(db, table) for table in ("charges", "debtors")}

    # One debtor a row (any governmentId is accepted when lenient): large loads of both.
    first = run_import(db, debtor_csv(_rows(0, 40)), lenient=True)
    second = run_import(db, debtor_csv(_rows(40, 100)), lenient=True)

    assert (first.status, first.imported, second.status, second.imported) == (
        "done",
        40,
        "done",
        60,
    )
    attached = [s for s in statements if "attach_charges_partition" in s]
    assert len(attached) == 2  # each file's charges in a partition of their own
    assert not [s for s in statements if "LOCK TABLE" in s.upper()]
    assert {table: schema_of(db, table) for table in before} == before
    assert scalar(db, "SELECT count(*) FROM charges") == 100
    with db.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready")
            ).scalar_one()
            == 0
        )
        # Written frozen and analysed when attached: statistics, and every page all-visible
        # (the dashboard's counts answer from the indexes at once).
        partitions = conn.execute(
            text(
                "SELECT c.reltuples, c.relpages, c.relallvisible FROM charges AS x "
                "JOIN pg_class AS c ON c.oid = x.tableoid "
                "WHERE c.relname LIKE 'charges_file_%' GROUP BY 1, 2, 3"
            )
        ).all()
    assert sorted(row.reltuples for row in partitions) == [40, 60]
    assert all(row.relallvisible == row.relpages > 0 for row in partitions)


@pytest.mark.slow
def test_migrations_as_the_application_role_say_who_must_run_them(
    empty_database: Engine, app_database_url: str
) -> None:
    as_app = make_engine(
        make_url(app_database_url)
        .set(database=empty_database.url.database)
        .render_as_string(hide_password=False)
    )
    try:
        with pytest.raises(OperatorError, match="MIGRATION_DATABASE_URL"):
            migrate(as_app)
    finally:
        as_app.dispose()


def test_a_role_of_one_s_own_server_made_as_docker_compose_does(
    db: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m db.roles` then `python -m billing migrate`, with the compose variables."""
    role = f"billing_test_made_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DATABASE_URL", url_as(database_url, role, "change-me-in-tests"))
    monkeypatch.setenv("MIGRATION_DATABASE_URL", database_url)
    get_settings.cache_clear()
    owner = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        assert create_role_main() == 0
        assert create_role_main() == 0  # again: the password is set, nothing else changes
        migrate_database()
        with owner.connect() as conn:
            granted = conn.execute(
                text(
                    "SELECT has_table_privilege(:role, 'charges', 'INSERT'), "
                    "has_table_privilege(:role, 'charges', 'TRUNCATE'), "
                    "has_function_privilege(:role, 'new_charges_partition()', 'EXECUTE'), "
                    "(SELECT rolcanlogin AND NOT rolsuper FROM pg_roles WHERE rolname = :role)"
                ),
                {"role": role},
            ).one()
        assert tuple(granted) == (True, False, True, True)
    finally:
        get_settings.cache_clear()
        with owner.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
        owner.dispose()


def test_the_role_maker_never_touches_the_owner(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        assert create_role_main() == 2
    finally:
        get_settings.cache_clear()
