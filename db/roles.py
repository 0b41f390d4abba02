"""Two roles in the database: the schema's owner, who migrates, and the application's.

The dashboard, the API and the worker connect as a role that owns nothing: it reads and
writes rows, but cannot DROP, ALTER or TRUNCATE a table, nor change or delete the audit
trail. What it is granted is derived from the schema after every migration, so a table a
new migration creates is covered at once. `python -m db.roles` creates (or updates) the
application's role named in DATABASE_URL, connecting as MIGRATION_DATABASE_URL.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from db.driver import driver_connection

log = logging.getLogger(__name__)

ROW_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")

# Tables on which the application's role gets less than ROW_PRIVILEGES: the audit trail is
# append-only; the migrations' ledger is only read (is the schema current?); the Overview's
# figures are read, and written only by the owner's triggers and functions; the debtIds
# ever charged are added, never changed.
TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "audit_events": ("SELECT", "INSERT"),
    "schema_migrations": ("SELECT",),
    "charge_totals": ("SELECT",),
    "charge_keys": ("SELECT", "INSERT"),
}
# Tables a large import VACUUMs once committed: on PostgreSQL 17 and later the MAINTAIN
# privilege lets the application's role do it (earlier, autovacuum does; see db/loading.py).
MAINTAINED_TABLES = ("charges", "debtors")
MAINTAIN_SINCE = 170_000

# The schema's tables, views and sequences the migrating role owns (partitions are reached
# through their parent only), with the privileges the application's role holds on each now
# and the table a sequence belongs to (identity or serial column), if any.
_RELATIONS = """
SELECT c.relname,
       c.relkind = 'S' AS is_sequence,
       (SELECT t.relname FROM pg_depend AS d JOIN pg_class AS t ON t.oid = d.refobjid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LIMIT 1) AS owned_by,
       ARRAY(SELECT a.privilege_type FROM aclexplode(c.relacl) AS a
             WHERE a.grantee = r.oid ORDER BY 1) AS held
FROM pg_class AS c, pg_roles AS r
WHERE r.rolname = :role
  AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND NOT c.relispartition
  AND pg_has_role(c.relowner, 'USAGE')
ORDER BY c.relname
"""

# The schema's functions the migrating role owns that the application's role may not
# execute yet (trigger functions included: harmless, and the rule stays simple).
_ROUTINES_TO_GRANT = """
SELECT p.oid::regprocedure::text
FROM pg_proc AS p, pg_roles AS r
WHERE r.rolname = :role
  AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
  AND pg_has_role(p.proowner, 'USAGE')
  AND NOT has_function_privilege(r.oid, p.oid, 'EXECUTE')
ORDER BY 1
"""


def table_privileges(table: str, *, server_version: int) -> tuple[str, ...]:
    """What the application's role may do on `table`."""
    granted = TABLE_PRIVILEGES.get(table, ROW_PRIVILEGES)
    if table in MAINTAINED_TABLES and server_version >= MAINTAIN_SINCE:
        granted = (*granted, "MAINTAIN")
    return granted


def sequence_privileges(owner_table_privileges: tuple[str, ...] | None) -> tuple[str, ...]:
    """What the application's role may do on a sequence, given its table's privileges
    (None for a sequence of its own, such as nosso_numero_seq)."""
    if owner_table_privileges is None or "UPDATE" in owner_table_privileges:
        return SEQUENCE_PRIVILEGES
    if "INSERT" in owner_table_privileges:
        return ("USAGE", "SELECT")  # new rows take numbers; nobody moves the sequence
    return ("SELECT",) if "SELECT" in owner_table_privileges else ()


def grant_application_role(conn: Connection, *, role: str) -> None:
    """Give `role` exactly what the application needs on this schema, and nothing more.

    Run by the schema's owner in the migration's transaction. Idempotent: privileges are
    compared with what `role` holds and only the difference is granted or revoked, so a
    policy that tightens (audit_events, once it exists) takes effect at the next migrate.
    """
    driver = driver_connection(conn)
    grantee = sql.Identifier(role)
    if conn.execute(text("SELECT current_user = :role"), {"role": role}).scalar_one():
        return
    version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    relations = conn.execute(text(_RELATIONS), {"role": role}).all()
    wanted = {
        name: table_privileges(name, server_version=version)
        for name, is_sequence, _, _ in relations
        if not is_sequence
    }
    for name, is_sequence, owned_by, held in relations:
        if is_sequence:
            privileges = sequence_privileges(wanted.get(owned_by) if owned_by else None)
            kind = sql.SQL("SEQUENCE")
        else:
            privileges = wanted[name]
            kind = sql.SQL("TABLE")
        relation = sql.Identifier(name)
        extra = sorted(set(held) - set(privileges))
        missing = [p for p in privileges if p not in held]
        if extra:
            driver.execute(
                sql.SQL("REVOKE {} ON {} {} FROM {}").format(
                    sql.SQL(", ").join(map(sql.SQL, extra)), kind, relation, grantee
                )
            )
        if missing:
            driver.execute(
                sql.SQL("GRANT {} ON {} {} TO {}").format(
                    sql.SQL(", ").join(map(sql.SQL, missing)), kind, relation, grantee
                )
            )
    for routine in conn.execute(text(_ROUTINES_TO_GRANT), {"role": role}).scalars():
        # regprocedure's text is the catalog's own spelling of the signature, quoted.
        driver.execute(
            sql.SQL("GRANT EXECUTE ON ROUTINE {} TO {}").format(sql.SQL(routine), grantee)
        )
    _grant_default_privileges(conn, grantee)
    _warn_if_it_may_create(conn, role)


def _grant_default_privileges(conn: Connection, grantee: sql.Identifier) -> None:
    """What the owner creates later outside a migration (none today) is usable at once;
    the next migrate narrows it to the policy above."""
    driver = driver_connection(conn)
    schema = sql.Identifier(conn.execute(text("SELECT current_schema()")).scalar_one())
    for privileges, kind in (
        (ROW_PRIVILEGES, "TABLES"),
        (SEQUENCE_PRIVILEGES, "SEQUENCES"),
        (("EXECUTE",), "ROUTINES"),
    ):
        driver.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON {} TO {}").format(
                schema, sql.SQL(", ").join(map(sql.SQL, privileges)), sql.SQL(kind), grantee
            )
        )


def _warn_if_it_may_create(conn: Connection, role: str) -> None:
    """A role that may CREATE in the schema would own what it creates: say so."""
    may_create = conn.execute(
        text("SELECT has_schema_privilege(:role, current_schema(), 'CREATE')"), {"role": role}
    ).scalar_one()
    if may_create:
        log.warning(
            "the application's role %s may create objects in schema %s: revoke it "
            "(REVOKE CREATE ON SCHEMA ... FROM PUBLIC, the default since PostgreSQL 15)",
            role,
            conn.execute(text("SELECT current_schema()")).scalar_one(),
        )


def ensure_login_role(conn: psycopg.Connection, *, role: str, password: str | None) -> bool:
    """Create `role` (LOGIN, no other attribute) unless it exists; set its password when
    one is given. Return whether it was created. `conn` is in autocommit, as a role that
    may create roles (the embedded server's superuser, or the owner in docker-compose)."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    # CREATE/ALTER ROLE take no parameters: the password goes as a quoted literal.
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
    if exists is None:
        try:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN{}").format(sql.Identifier(role), secret))
        except psycopg.errors.DuplicateObject:  # another process created it meanwhile
            pass
        else:
            log.info("created the application's role %s", role)
            return True
    if password:
        conn.execute(sql.SQL("ALTER ROLE {}{}").format(sql.Identifier(role), secret))
    return False


def main() -> int:
    """Create or update the application's role of DATABASE_URL, as MIGRATION_DATABASE_URL."""
    from sqlalchemy import make_url

    from billing.core.settings import get_settings
    from db.engine import libpq_url

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not (settings.database_url and settings.migration_database_url):
        print(
            "python -m db.roles needs DATABASE_URL (the application's role, with its "
            "password) and MIGRATION_DATABASE_URL (a role that may create roles).",
        )
        return 2
    application = make_url(libpq_url(settings.database_url))
    owner = make_url(libpq_url(settings.migration_database_url))
    if not application.username or application.username == owner.username:
        print(
            "DATABASE_URL must name the application's own role, not none and not the "
            "owner of MIGRATION_DATABASE_URL."
        )
        return 2
    with psycopg.connect(libpq_url(settings.migration_database_url), autocommit=True) as conn:
        created = ensure_login_role(
            conn, role=application.username, password=application.password or None
        )
    print(f"role {application.username} {'created' if created else 'up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
