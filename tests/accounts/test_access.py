"""Every action checks the role in billing/, whichever door it comes through.

Called here as the domain functions themselves, with a viewer: each refuses with a
sentence, writes nothing and leaves no audit row. An operator's same calls work.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from billing.accounts import audit
from billing.accounts import users as accounts
from billing.accounts.access import Actor, Forbidden, Permission, Role, require
from billing.boletos.issuing import boleto_pdf_download
from billing.charges.browsing import correct_debtor_email, reveal_government_id
from billing.charges.export import charges_csv_chunks
from billing.core.filters import ChargeFilter
from billing.imports.service import import_file, rejected_rows_csv
from billing.notices.dispatch import run_cycle
from billing.notices.planning import resend_notice, retry_failed_notices
from billing.payments.service import cancel_charge, mark_paid, record_payment, reopen_charge
from tests.support.actors import OPERATOR, VIEWER
from tests.support.debtor_files import VALID_CPFS, debtor_csv

TODAY = date(2030, 1, 1)


@pytest.fixture()
def charge(db: Engine) -> dict[str, int]:
    rows = [("Ana Souza", VALID_CPFS[0], "ana@example.com", "100.00", "2030-02-01", "d-1")]
    result = import_file(
        actor=OPERATOR, engine=db, data=debtor_csv(rows), file_name="a.csv", lenient_documents=False
    )
    with db.connect() as conn:
        charge_id, debtor_id = conn.execute(text("SELECT id, debtor_id FROM charges")).one()
    return {"charge": charge_id, "debtor": debtor_id, "import": result.import_id}


ACTIONS = {
    "import a file": lambda db, ids, actor: import_file(
        actor=actor, engine=db, data=b"x", file_name="x.csv", lenient_documents=True
    ),
    "mark paid": lambda db, ids, actor: mark_paid(
        db, charge_id=ids["charge"], reason="Paid at the branch", actor=actor
    ),
    "cancel": lambda db, ids, actor: cancel_charge(
        db, charge_id=ids["charge"], reason="Sold", actor=actor
    ),
    "reopen": lambda db, ids, actor: reopen_charge(
        db, charge_id=ids["charge"], reason="Not sold after all", actor=actor
    ),
    "correct an e-mail": lambda db, ids, actor: correct_debtor_email(
        db, actor=actor, debtor_id=ids["debtor"], email="ana.souza@example.org"
    ),
    "record a payment": lambda db, ids, actor: record_payment(
        db,
        debt_id="d-1",
        paid_at="2029-01-01 10:00:00",
        paid_amount=Decimal("1.00"),
        paid_by="Ana",
        source="webhook",
        payload={},
        actor=actor,
    ),
    "resend": lambda db, ids, actor: resend_notice(
        db, actor=actor, charge_id=ids["charge"], kind="issued"
    ),
    "retry failed": lambda db, ids, actor: retry_failed_notices(db, actor=actor),
    "send now": lambda db, ids, actor: run_cycle(db, actor=actor, today=TODAY),
    "export": lambda db, ids, actor: charges_csv_chunks(
        db, actor=actor, charge_filter=ChargeFilter(), today=TODAY
    ),
    "rejected rows": lambda db, ids, actor: rejected_rows_csv(
        db, actor=actor, import_id=ids["import"]
    ),
    "boleto PDF": lambda db, ids, actor: boleto_pdf_download(
        db, actor=actor, charge_id=ids["charge"]
    ),
    "reveal": lambda db, ids, actor: reveal_government_id(db, actor=actor, debtor_id=ids["debtor"]),
    "list accounts": lambda db, ids, actor: accounts.list_accounts(db, actor=actor),
    "read the audit": lambda db, ids, actor: audit.audit_events(
        db, actor=actor, audit_filter=audit.AuditFilter(), timezone="America/Sao_Paulo"
    ),
}


def snapshot(db: Engine) -> tuple:
    with db.connect() as conn:
        return conn.execute(
            text(
                "SELECT (SELECT count(*) FROM imports), (SELECT count(*) FROM payments), "
                "(SELECT string_agg(status, ',') FROM charges), "
                "(SELECT count(*) FROM audit_events), (SELECT count(*) FROM accounts)"
            )
        ).one()


@pytest.mark.parametrize("action", ACTIONS, ids=list(ACTIONS))
def test_a_viewer_is_refused_by_the_domain(db: Engine, charge, action: str) -> None:
    before = snapshot(db)
    with pytest.raises(Forbidden, match="signed in as viewer may not"):
        ACTIONS[action](db, charge, VIEWER)
    assert snapshot(db) == before


@pytest.mark.parametrize("action", ["list accounts", "read the audit"])
def test_an_operator_is_refused_administration(db: Engine, charge, action: str) -> None:
    with pytest.raises(Forbidden, match="operator may not"):
        ACTIONS[action](db, charge, OPERATOR)


def test_an_operator_may_reveal_and_it_is_audited(db: Engine, charge) -> None:
    whole = reveal_government_id(db, actor=OPERATOR, debtor_id=charge["debtor"])
    assert whole.replace(".", "").replace("-", "") == VALID_CPFS[0]
    with db.connect() as conn:
        actor, subject = conn.execute(
            text(
                "SELECT actor, subject FROM audit_events WHERE action = 'debtor.reveal_document' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert (actor, subject) == (OPERATOR.name, f"debtor:{charge['debtor']}")


def test_an_operator_may_correct_an_email_and_reopen_a_charge(db: Engine, charge) -> None:
    ACTIONS["correct an e-mail"](db, charge, OPERATOR)
    ACTIONS["cancel"](db, charge, OPERATOR)
    assert ACTIONS["reopen"](db, charge, OPERATOR).to_status == "issued"
    with db.connect() as conn:
        actions = conn.execute(
            text("SELECT action FROM audit_events WHERE actor = :a ORDER BY id"),
            {"a": OPERATOR.name},
        ).scalars()
        assert list(actions)[-3:] == ["debtor.email_changed", "charge.cancel", "charge.reopen"]


def test_an_identity_is_required_not_a_typed_name() -> None:
    with pytest.raises(TypeError):
        require("maria", Permission.READ)  # type: ignore[arg-type]
    assert Actor("x", Role.ADMIN).can(Permission.MANAGE_ACCOUNTS)
