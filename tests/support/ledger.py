"""The Overview's ledger: one set of charges covering every case the definitions care
about (a charge in each status and aging bucket, a partial payment, an overpayment, a
canceled charge, a payment and a notice on each side of midnight in São Paulo)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from billing.accounts.access import WEBHOOK_ACTOR
from billing.imports.service import import_file
from billing.payments.service import cancel_charge, record_payment
from tests.support.actors import OPERATOR, operator
from tests.support.database import execute, scalar
from tests.support.debtor_files import VALID_CPFS

TODAY = date(2024, 6, 15)
TZ = "America/Sao_Paulo"

# debtId: (amount, due date); every imported charge is issued by the import.
LEDGER = {
    "current": ("100.00", "2024-06-20"),  # due in 5 days
    "late-14": ("200.00", "2024-06-01"),  # 1-30 days late
    "partial": ("300.00", "2024-05-01"),  # 45 days late, 120.00 received
    "late-75": ("400.00", "2024-04-01"),  # 61-90 days late
    "late-157": ("500.00", "2024-01-10"),  # over 90 days late
    "overpaid": ("600.00", "2024-06-10"),  # paid 650.00
    "canceled": ("700.00", "2024-06-05"),
}


def ledger_csv() -> bytes:
    lines = ["name,governmentId,email,debtAmount,debtDueDate,debtId"]
    for number, (debt_id, (amount, due)) in enumerate(LEDGER.items()):
        cpf = VALID_CPFS[number % len(VALID_CPFS)]
        lines.append(f"Devedor {number},{cpf},d{number}@example.com,{amount},{due},{debt_id}")
    return ("\n".join(lines) + "\n").encode()


def load_ledger(db: Engine) -> None:
    import_file(
        actor=OPERATOR,
        engine=db,
        data=ledger_csv(),
        file_name="ledger.csv",
        lenient_documents=False,
    )
    # A charge imported while issuing was off stays pending; the import issues at once,
    # so one is written as such: 50.00 due 2024-06-25, no boleto.
    execute(
        db,
        "INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date, "
        "payer_name, payer_email) SELECT 'pending', debtor_id, import_id, 50.00, "
        "DATE '2024-06-25', payer_name, payer_email FROM charges WHERE debt_id = 'current'",
    )

    def pay(debt_id: str, paid_at: str, amount: str) -> None:
        record_payment(
            db,
            actor=WEBHOOK_ACTOR,
            debt_id=debt_id,
            paid_at=paid_at,
            paid_amount=amount,
            paid_by="Devedor",
            source="webhook",
            payload={},
            timezone=TZ,
        )

    pay("partial", "2024-05-20 10:00:00", "100.00")
    pay("partial", "2024-05-31 23:30:00", "20.00")  # 02:30 UTC on June 1st: still May
    pay("overpaid", "2024-06-12 10:00:00", "650.00")
    canceled = scalar(db, "SELECT id FROM charges WHERE debt_id = 'canceled'")
    cancel_charge(db, charge_id=canceled, reason="Renegotiated", actor=operator("ana"))

    # Notices: three sent on the 14th in São Paulo (one at 23:30, already the 15th in
    # UTC), one still queued, one sent before the 90 days the chart shows.
    for debt_id, kind, status, sent_at in [
        ("current", "issued", "sent", "2024-06-14 09:00:00-03"),
        ("current", "reminder", "sent", "2024-06-14 12:00:00-03"),
        ("late-14", "issued", "sent", "2024-06-14 23:30:00-03"),
        ("late-14", "reminder", "queued", None),
        ("late-157", "issued", "sent", "2024-03-01 09:00:00-03"),
    ]:
        execute(
            db,
            "INSERT INTO notices (charge_id, kind, status, sent_at, message_id) "
            "SELECT id, :kind, :status, CAST(:sent_at AS timestamptz), :message_id "
            "FROM charges WHERE debt_id = :debt_id",
            debt_id=debt_id,
            kind=kind,
            status=status,
            sent_at=sent_at,
            message_id=f"<{debt_id}.{kind}@fundo.example>",
        )
