"""Charges to notify and the settings the notice tests send with (a real SMTP server)."""

from __future__ import annotations

import dataclasses
from datetime import date

from sqlalchemy import Engine

from billing.boletos.issuing import issue_boletos
from billing.core.settings import Settings
from billing.imports.service import import_file
from tests.support.actors import OPERATOR
from tests.support.database import execute
from tests.support.debtor_files import HEADER
from tests.support.smtp_server import SmtpTestServer


def notice_settings(smtp: SmtpTestServer | None = None, **changes: object) -> Settings:
    """Settings for these tests: every kind on, and the test SMTP server if given."""
    values: dict[str, object] = {
        "notice_on_issue": True,
        "notice_reminder_days": 3,
        "notice_on_due_date": True,
        "notice_overdue_days": 1,
        "mail_from": "Cobrança <cobranca@fundo.example>",
        "mail_max_attempts": 3,
        "mail_rate_per_second": 0,
        "mail_attach_pdf": False,
        "pix_key": "",
        "timezone": "America/Sao_Paulo",
    }
    if smtp is not None:
        values.update(smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none")
    values.update(changes)
    return dataclasses.replace(Settings(), **values)  # type: ignore[arg-type]


def charges_csv(due_dates: dict[str, date], *, email: str = "{debt_id}@example.com") -> bytes:
    """One charge per debtId, each due on its date; debtor names carry accents."""
    rows = [HEADER]
    for number, (debt_id, due) in enumerate(due_dates.items()):
        address = email.format(debt_id=debt_id)
        rows.append(f"Conceição {number},52998224725,{address},{150 + number}.25,{due},{debt_id}")
    return ("\n".join(rows) + "\n").encode()


def create_charges(db: Engine, due_dates: dict[str, date]) -> None:
    """Charges through the real import, which issues their boletos."""
    result = import_file(
        actor=OPERATOR,
        engine=db,
        data=charges_csv(due_dates),
        file_name="x.csv",
        lenient_documents=True,
    )
    assert result.status == "done", result.error
    issue_boletos(db, settings=notice_settings())  # a no-op when the import issued them


def add_pending_charge(db: Engine, debt_id: str, due: date) -> None:
    """A charge without its boleto yet (the import issues them; the cycle issues any
    left behind), for the same debtor as the first charge."""
    execute(
        db,
        """
        INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date,
                             payer_name, payer_email)
        SELECT :debt_id, debtor_id, import_id, 99.90, :due, payer_name, :email
        FROM charges ORDER BY id LIMIT 1
        """,
        debt_id=debt_id,
        due=due,
        email=f"{debt_id}@example.com",
    )
