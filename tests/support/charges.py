"""Charges written straight to the database, as an import leaves them before it issues
their boletos, and the settings that issue boletos without Pix."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

from billing.core.settings import Settings

NO_PIX = Settings(pix_key="")


def add_pending_charges(db: Engine, count: int, *, due: date = date(2025, 6, 1)) -> None:
    """Pending charges as an import leaves them before it issues (set-based SQL)."""
    with db.begin() as conn:
        import_id = conn.execute(
            text(
                "INSERT INTO imports (file_name, sha256, size_bytes, status) "
                "VALUES ('pending.csv', '-', 0, 'done') RETURNING id"
            )
        ).scalar_one()
        debtor_id = conn.execute(
            text(
                "INSERT INTO debtors (government_id, name, email, search_name) "
                "VALUES ('39053344705', 'Pendente', 'p@example.com', 'pendente') "
                "ON CONFLICT (government_id) DO UPDATE SET name = excluded.name RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                """
                INSERT INTO charges (debt_id, debtor_id, import_id, amount, due_date,
                                     payer_name, payer_email)
                SELECT 'pending-' || :import_id || '-' || g, :debtor_id, :import_id,
                       1 + g * 0.37, CAST(:due AS date) + g % 400, 'Pendente', 'p@example.com'
                FROM generate_series(1, :count) AS g
                """
            ),
            {"import_id": import_id, "debtor_id": debtor_id, "count": count, "due": due},
        )
