"""`python -m billing remessa` and `retorno` as a real process, and the API's retorno
upload over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.actors import OPERATOR
from tests.support.api_server import TOKEN
from tests.support.api_server import base_url as base_url  # the served API (a fixture)
from tests.support.cli import run_cli
from tests.support.cnab_bank import (
    Title,
    bank_retorno,
    bank_tables,  # noqa: F401 (the bank_db fixture)
)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows

pytestmark = pytest.mark.slow  # each test runs `python -m billing` in a subprocess


def _nosso(db: Engine, debt_id: str) -> int:
    return scalar(db, "SELECT nosso_numero FROM charges WHERE debt_id = :d", d=debt_id)


def test_remessa_then_retorno_from_the_command_line(
    bank_db: Engine,
    app_env,
    tmp_path: Path,
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(2)))
    out = tmp_path / "remessa.rem"

    done = run_cli(["remessa", "--out", str(out), "--json"], app_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "generated" and report["registrations"] == 2
    assert report["files"][0]["nsa"] == 1 and report["files"][0]["path"] == str(out)
    lines = out.read_bytes().split(b"\r\n")[:-1]
    assert len(lines) == 4 + 2 * 3 and all(len(line) == 240 for line in lines)

    again = run_cli(["remessa", "--out", str(tmp_path / "again.rem")], app_env)
    assert again.returncode == 0
    assert "Nothing new to send to the bank" in again.stdout
    assert not (tmp_path / "again.rem").exists()

    retorno = tmp_path / "bank.ret"
    retorno.write_bytes(bank_retorno([Title("02", _nosso(bank_db, "debt-000000"))]))
    imported = run_cli(["retorno", str(retorno), "--json"], app_env)
    assert imported.returncode == 0, imported.stderr
    counts = json.loads(imported.stdout)
    assert counts["status"] == "done" and counts["registered"] == 1
    assert scalar(bank_db, "SELECT status FROM charges WHERE debt_id = 'debt-000000'") == (
        "registered"
    )
    human = run_cli(["retorno", str(retorno)], app_env)
    assert human.returncode == 0 and "1 unchanged" in human.stdout


def test_a_file_that_is_not_a_retorno_exits_2_with_one_sentence(
    bank_db: Engine,
    app_env,
    tmp_path: Path,
) -> None:
    wrong = tmp_path / "debtors.csv"
    wrong.write_bytes(debtor_csv(sample_rows(1)))
    refused = run_cli(["retorno", str(wrong), "--json"], app_env)
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["status"] == "refused"
    assert refused.stderr.strip().startswith("Retorno refused: Line 1 has 53 characters")
    assert "Traceback" not in refused.stderr
    assert scalar(bank_db, "SELECT count(*) FROM retornos") == 0


def test_a_retorno_uploaded_through_the_api(
    base_url: str,
    bank_db: Engine,
) -> None:
    from billing.cnab.service import generate_remessa

    run_import(bank_db, debtor_csv(sample_rows(1)))
    generate_remessa(bank_db, actor=OPERATOR)
    data = bank_retorno([Title("02", _nosso(bank_db, "debt-000000"))])
    with httpx.Client(base_url=base_url, timeout=30) as client:
        unauthorised = client.post("/bank/retornos", files={"file": ("r.ret", data)})
        assert unauthorised.status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = client.post("/bank/retornos", files={"file": ("r.ret", data)}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["registered"] == 1
        refused = client.post(
            "/bank/retornos", files={"file": ("x.csv", b"a,b\n1,2\n")}, headers=headers
        )
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith("Line 1 has 3 characters")
    assert scalar(bank_db, "SELECT actor FROM retornos") == "api"
