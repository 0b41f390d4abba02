"""Backups: a database with imports, boletos, notices, payments and audit events, backed up
with pg_dump and restored into a fresh database, holds the same counts and sums; the
application's role keeps its grants there. Through the domain and through the CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import ProgrammingError

from billing.accounts.access import WEBHOOK_ACTOR
from billing.core.errors import OperatorError
from billing.core.settings import Settings
from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import import_file
from billing.notices.planning import plan_notices
from billing.operations.backup import (
    BACKUP_ACTION,
    RESTORE_ACTION,
    backup_database,
    objects_in_schema,
    restore_database,
)
from billing.payments.service import record_payment
from db.engine import make_engine, url_as
from tests.support.actors import ADMIN, OPERATOR

pytestmark = pytest.mark.slow  # pg_dump and pg_restore into fresh databases

# What must survive a backup: how many rows of each, and the money.
FIGURES = {
    "imports": "SELECT count(*) FROM imports",
    "import_rejections": "SELECT count(*) FROM import_rejections",
    "debtors": "SELECT count(*) FROM debtors",
    "charges": "SELECT count(*) FROM charges",
    "charges by status": "SELECT string_agg(status || '=' || n, ',' ORDER BY status) "
    "FROM (SELECT status, count(*) AS n FROM charges GROUP BY status) s",
    "charged": "SELECT sum(amount) FROM charges",
    "boletos": "SELECT count(*) FROM charges WHERE digitable_line IS NOT NULL",
    "nosso numeros": "SELECT sum(nosso_numero::numeric) FROM charges",
    "notices": "SELECT count(*) FROM notices",
    "payments": "SELECT count(*) FROM payments",
    "paid": "SELECT sum(paid_amount) FROM payments",
    "charge events": "SELECT count(*) FROM charge_events",
    "audit events": "SELECT count(*) FROM audit_events WHERE action NOT LIKE 'database.%'",
    "accounts": "SELECT count(*) FROM accounts",
}


def figures(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {name: conn.execute(text(query)).scalar_one() for name, query in FIGURES.items()}


def debtor_file() -> bytes:
    lines = [",".join(REQUIRED_COLUMNS)] + [
        f"Conceição {n},{n:011d},c{n}@example.com,{n * 10}.25,2030-0{n % 9 + 1}-15,BK-{n}"
        for n in range(1, 41)
    ]
    lines.append("Sem Valor,00000000099,x@example.com,,2030-01-01,BK-bad")  # rejected
    return ("\n".join(lines) + "\n").encode()


def fill(db: Engine) -> None:
    """Imports (one row rejected), boletos, notices, payments and their audit rows."""
    result = import_file(
        engine=db, actor=OPERATOR, data=debtor_file(), file_name="bk.csv", lenient_documents=True
    )
    assert (result.imported, result.rejected) == (40, 1), result
    plan_notices(db, today=date(2030, 1, 1), settings=Settings(pix_key=""))
    for n, amount in ((1, "10.25"), (2, "5.00"), (3, "100.00")):
        record_payment(
            db,
            debt_id=f"BK-{n}",
            paid_at="2024-01-02 10:00:00",
            paid_amount=amount,
            paid_by="Pagador",
            source="webhook",
            payload={"debtId": f"BK-{n}"},
            actor=WEBHOOK_ACTOR,
            timezone="America/Sao_Paulo",
        )


def owner_url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def app_url_on(engine: Engine, app_database_url: str) -> str:
    """The application's role (a role of the whole server) on the database of `engine`."""
    app = make_url(app_database_url)
    return url_as(owner_url_of(engine), str(app.username), app.password)


@pytest.fixture()
def filled(db: Engine, owner_engine: Engine) -> Engine:
    fill(db)
    figures_now = figures(owner_engine)
    assert figures_now["notices"] and figures_now["payments"] == 3
    return db


def test_a_backup_restored_into_a_fresh_database_holds_the_same_figures(
    filled: Engine,
    owner_engine: Engine,
    empty_database: Engine,
    app_role: str,
    app_database_url: str,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "billing.dump"

    made = backup_database(actor=ADMIN, owner_url=owner_url_of(owner_engine), path=archive)

    assert archive.read_bytes()[:5] == b"PGDMP" and made.size_bytes == archive.stat().st_size
    assert not list(tmp_path.glob("*.partial"))
    restored = restore_database(
        actor=ADMIN,
        owner_url=owner_url_of(empty_database),
        path=archive,
        force=False,
        app_role=app_role,
    )
    assert not restored.replaced
    assert figures(empty_database) == figures(owner_engine)
    with empty_database.connect() as conn:
        trail = conn.execute(
            text("SELECT action, actor FROM audit_events WHERE action LIKE 'database.%'")
        ).all()
    assert [tuple(row) for row in trail] == [(RESTORE_ACTION, ADMIN.name)]
    with owner_engine.connect() as conn:
        backups = conn.execute(
            text("SELECT details->>'sha256' FROM audit_events WHERE action = :a ORDER BY id"),
            {"a": BACKUP_ACTION},
        ).scalars()
        assert made.sha256 in list(backups)

    # The application's role works on the restored database: grants came along, and
    # the sequences go on from where they were (a new charge gets a new nosso número).
    app = make_engine(app_url_on(empty_database, app_database_url))
    try:
        more = import_file(
            engine=app,
            actor=OPERATOR,
            data=f"{','.join(REQUIRED_COLUMNS)}\nNova,123,n@example.com,9.90,2030-05-05,BK-new\n".encode(),
            file_name="after.csv",
            lenient_documents=True,
        )
        assert (more.status, more.imported, more.issued) == ("done", 1, 1), more
        with app.connect() as conn:
            assert conn.execute(
                text("SELECT count(DISTINCT nosso_numero) = count(*) FROM charges")
            ).scalar_one()
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("DELETE FROM audit_events"))
    finally:
        app.dispose()


def test_a_restore_refuses_a_database_that_holds_anything_unless_forced(
    filled: Engine, owner_engine: Engine, app_role: str, tmp_path: Path
) -> None:
    archive = tmp_path / "billing.dump"
    backup_database(actor=ADMIN, owner_url=owner_url_of(owner_engine), path=archive)
    before = figures(owner_engine)
    owner_url = owner_url_of(owner_engine)

    with pytest.raises(OperatorError, match=r"not empty .* --force") as refused:
        restore_database(
            actor=ADMIN, owner_url=owner_url, path=archive, force=False, app_role=app_role
        )
    assert "\n" not in refused.value.message
    assert figures(owner_engine) == before
    with pytest.raises(OperatorError, match="already exists"):
        backup_database(actor=ADMIN, owner_url=owner_url, path=archive)

    # Forced: what the database held is replaced by the archive, which is the same data
    # plus what was written since (dropped by the restore).
    filled_more = import_file(
        engine=filled,
        actor=OPERATOR,
        data=f"{','.join(REQUIRED_COLUMNS)}\nDepois,321,d@example.com,1.00,2030-05-05,BK-x\n".encode(),
        file_name="later.csv",
        lenient_documents=True,
    )
    assert filled_more.imported == 1
    restored = restore_database(
        actor=ADMIN, owner_url=owner_url, path=archive, force=True, app_role=app_role
    )
    assert restored.replaced
    after = figures(owner_engine)
    assert after == before
    assert objects_in_schema(owner_url) > 0


@pytest.mark.parametrize("content", [b"", b"name,governmentId\n", b"PGDM"])
def test_a_file_that_is_not_a_backup_is_refused_before_anything_changes(
    empty_database: Engine, tmp_path: Path, content: bytes
) -> None:
    archive = tmp_path / "not-a-backup.dump"
    archive.write_bytes(content)
    with pytest.raises(OperatorError, match="is not a backup made by"):
        restore_database(
            actor=ADMIN,
            owner_url=owner_url_of(empty_database),
            path=archive,
            force=False,
            app_role=None,
        )
    assert objects_in_schema(owner_url_of(empty_database)) == 0


def test_only_an_administrator_may_back_up_or_restore(owner_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="may not back up"):
        backup_database(
            actor=OPERATOR, owner_url=owner_url_of(owner_engine), path=tmp_path / "x.dump"
        )
    with pytest.raises(OperatorError, match="may not restore"):
        restore_database(
            actor=OPERATOR,
            owner_url=owner_url_of(owner_engine),
            path=tmp_path / "x.dump",
            force=True,
            app_role=None,
        )
    assert not (tmp_path / "x.dump").exists()


def run_cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_line_backs_up_and_restores(
    filled: Engine,
    owner_engine: Engine,
    empty_database: Engine,
    app_env: dict[str, str],
    app_role: str,
    app_database_url: str,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "nightly.dump"

    made = run_cli(app_env, "backup", str(archive))

    assert made.returncode == 0, made.stderr
    assert f"backed up to {archive}" in made.stdout
    fresh_owner = owner_url_of(empty_database)
    fresh_env = app_env | {
        "MIGRATION_DATABASE_URL": fresh_owner,
        "DATABASE_URL": app_url_on(empty_database, app_database_url),
    }
    restored = run_cli(fresh_env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert figures(empty_database) == figures(owner_engine)

    again = run_cli(fresh_env, "restore", str(archive))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "not empty" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    forced = run_cli(fresh_env, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "dropped first" in forced.stdout
    assert figures(empty_database) == figures(owner_engine)
