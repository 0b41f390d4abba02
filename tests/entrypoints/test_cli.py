"""`python -m billing` as cron and batch scripts use it: real processes, real database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.support.cli import run_cli
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, sample_rows

pytestmark = pytest.mark.slow  # each test runs `python -m billing` in a subprocess


def test_import_json_reports_counts_and_exit_0(db: Engine, app_env, tmp_path: Path) -> None:
    file = tmp_path / "debtors.csv"
    file.write_bytes(debtor_csv([*sample_rows(5), ("", "1", "x", "0", "x", "bad")]))

    done = run_cli(["import", str(file), "--json"], app_env)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {k: report[k] for k in ("status", "rows", "imported", "duplicates", "rejected")} == {
        "status": "done",
        "rows": 6,
        "imported": 5,
        "duplicates": 0,
        "rejected": 1,
    }
    assert isinstance(report["seconds"], float)
    assert scalar(db, "SELECT count(*) FROM charges") == 5


def test_refused_file_exits_2_with_reason_and_no_traceback(
    db: Engine, app_env, tmp_path: Path
) -> None:
    file = tmp_path / "photo.csv"
    file.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")

    done = run_cli(["import", str(file), "--json"], app_env)

    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert report["status"] == "refused" and "binary" in report["error"]
    assert "binary" in done.stderr and "Traceback" not in done.stderr


def test_missing_file_is_refused_cleanly(db: Engine, app_env, tmp_path: Path) -> None:
    done = run_cli(["import", str(tmp_path / "nope.csv"), "--json"], app_env)
    assert done.returncode == 2
    assert json.loads(done.stdout)["status"] == "refused"
    assert "Traceback" not in done.stderr


def test_lenient_documents_flag(db: Engine, app_env, tmp_path: Path) -> None:
    file = tmp_path / "sample.csv"
    file.write_bytes(debtor_csv([("Elijah", "9558", "e@example.net", "7811", "2024-01-19", "x")]))
    done = run_cli(["import", str(file), "--lenient-documents", "--json"], app_env)
    assert json.loads(done.stdout)["imported"] == 1


def test_migrate_is_idempotent(db: Engine, app_env) -> None:
    done = run_cli(["migrate"], app_env)
    assert done.returncode == 0
    assert "up to date" in done.stdout


_LOAD_STATEMENTS = ("COPY charges", "COPY import_", "INSERT INTO debtors", "ALTER TABLE charges")


def _wait_for_load(db: Engine, timeout: float = 60) -> bool:
    """True once another session runs one of the import's write statements."""
    patterns = [f"{statement}%" for statement in _LOAD_STATEMENTS]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND query ILIKE ANY(:patterns) AND state = 'active'"
                ),
                {"patterns": patterns},
            ).scalar_one()
        if busy:
            return True
        time.sleep(0.02)
    return False


def test_killed_mid_import_leaves_nothing_and_the_next_run_completes(
    db: Engine, app_env, tmp_path: Path
) -> None:
    file = tmp_path / "big.csv"
    file.write_bytes(debtor_csv(sample_rows(200_000)))
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "import", str(file), "--json"],
        env=app_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait_for_load(db), "the import never reached the load phase"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)

    deadline = time.monotonic() + 30  # the server notices the dead client and rolls back
    while (
        scalar(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%' "
            "OR query ILIKE 'INSERT INTO charges%'",
        )
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert scalar(db, "SELECT count(*) FROM charges") == 0
    assert scalar(db, "SELECT count(*) FROM debtors") == 0

    done = run_cli(["import", str(file), "--json"], app_env)
    assert json.loads(done.stdout)["imported"] == 200_000
    with db.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM imports ORDER BY id")).scalars().all()
    assert statuses == ["failed", "done"]


BANK_FILE = (
    b"Nome do Cliente;Documento;E-mail;Valor Original;Vencimento;Contrato\n"
    b"Ana Souza;529.982.247-25;ana@example.com;1.000,50;31/10/2026;C-1\n"
    b"Bruno Lima;11144477735;bruno@example.com.br;200,00;01/11/2026;C-2\n"
)
BANK_COLUMNS = {
    "name": "Nome do Cliente",
    "governmentId": "Documento",
    "email": "E-mail",
    "debtAmount": "Valor Original",
    "debtDueDate": "Vencimento",
    "debtId": "Contrato",
}


def test_import_with_a_saved_mapping_by_name(db: Engine, app_env, tmp_path: Path) -> None:
    from billing.imports.mapping import save_mapping
    from tests.support.actors import OPERATOR

    save_mapping(
        db, actor=OPERATOR, name="Banco X", header=list(BANK_COLUMNS.values()), columns=BANK_COLUMNS
    )
    file = tmp_path / "banco.csv"
    file.write_bytes(BANK_FILE)

    without = run_cli(["import", str(file), "--json"], app_env)
    assert without.returncode == 2
    assert "Required column(s) missing" in json.loads(without.stdout)["error"]

    done = run_cli(["import", str(file), "--mapping", "Banco X", "--json"], app_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"] == 2
    with db.connect() as conn:
        amounts = conn.execute(text("SELECT debt_id, amount::text FROM charges ORDER BY 1")).all()
        details = conn.execute(
            text("SELECT details FROM audit_events WHERE action = 'import.file' ORDER BY id DESC")
        ).first()
    assert [tuple(row) for row in amounts] == [("C-1", "1000.50"), ("C-2", "200.00")]
    assert details is not None
    assert details[0]["mapping"] == {"name": "Banco X", "columns": BANK_COLUMNS}


def test_an_unknown_mapping_is_refused_naming_the_saved_ones(
    db: Engine, app_env, tmp_path: Path
) -> None:
    from billing.imports.mapping import save_mapping
    from tests.support.actors import OPERATOR

    save_mapping(
        db, actor=OPERATOR, name="Banco X", header=list(BANK_COLUMNS.values()), columns=BANK_COLUMNS
    )
    file = tmp_path / "banco.csv"
    file.write_bytes(BANK_FILE)

    done = run_cli(["import", str(file), "--mapping", "ERP"], app_env)

    assert done.returncode == 2
    assert "No column mapping is called 'ERP'. Saved mappings: Banco X." in done.stderr
    assert "Traceback" not in done.stderr
    assert scalar(db, "SELECT count(*) FROM charges") == 0


def test_rejection_reasons_are_printed_in_the_chosen_language(
    db: Engine, app_env, tmp_path: Path
) -> None:
    file = tmp_path / "debtors.csv"
    file.write_bytes(
        debtor_csv([*sample_rows(1), ("Ana", "52998224725", "a@b.com", "-1", "2030-01-01", "x")])
    )

    english = run_cli(["import", str(file)], app_env)
    portuguese = run_cli(["import", str(file)], app_env | {"LANGUAGE": "pt_BR"})

    assert "debtAmount is negative" in english.stdout
    assert "debtAmount is negative" not in portuguese.stdout
    assert "negativo" in portuguese.stdout
