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
