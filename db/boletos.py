"""SQL of boleto issuing: the pending queue, nosso número allocation, the bulk write.

Each batch is one transaction of the caller (billing.boletos.issuing.issue_boletos): lock,
claim, compute in Python, write. The write is guarded by status = 'pending', so a
charge that changed meanwhile (paid, canceled, issued by someone else) is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypedDict, cast

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, Engine, text

from db.loading import copy_table

ISSUE_LOCK_KEY = 7_301_004  # pg_advisory_xact_lock key: one issuer computes at a time

# The next `limit` pending charges after `after_id`, in id order (charges_pending_idx),
# each with a fresh nosso número. nextval runs above the LIMIT, so exactly one number
# is taken per charge returned. One row of four arrays, because 100,000 rows of four
# values take seconds to arrive through SQLAlchemy, the four arrays under 0.1 s.
_CLAIM_PENDING = """
SELECT coalesce(array_agg(id), '{{}}'),
       coalesce(array_agg(amount_cents), '{{}}'),
       coalesce(array_agg(due_days), '{{}}'),
       coalesce(array_agg(nextval('nosso_numero_seq')), '{{}}')
FROM (
    SELECT id, (amount * 100)::bigint AS amount_cents, due_date - DATE '1970-01-01' AS due_days
    FROM charges
    WHERE status = 'pending' AND id > :after_id {import_filter}
      AND due_date >= :first_due_date AND amount <= :max_amount
    ORDER BY id
    LIMIT :limit
) AS pending
"""

# Pending charges that can never get a barcode (no due-date factor before 2000-07-03,
# or more than the barcode's ten digits of cents): issuing leaves them pending.
_COUNT_UNISSUABLE = """
SELECT count(*) FROM charges
WHERE status = 'pending' {import_filter}
  AND (due_date < :first_due_date OR amount > :max_amount)
"""

_CREATE_BATCH = """
CREATE TEMP TABLE boleto_batch (
    id bigint NOT NULL,
    nosso_numero bigint NOT NULL,
    barcode text NOT NULL,
    digitable_line text NOT NULL,
    pix_code text
) ON COMMIT DROP
"""
BATCH_COLUMNS = ("id", "nosso_numero", "barcode", "digitable_line", "pix_code")

# The id range lets the planner read only this batch's part of charges; the status
# guard makes the write idempotent and safe next to payments and cancellations.
#
# The indexed columns (INCLUDE ones too: amount, in 005) set to themselves are for
# speed, not meaning; keep the list in step with the indexes of charges. Each issued row
# gets a new entry in every index of charges (nosso_numero changes, so no update can
# be HOT). For an index whose columns an UPDATE does not name, PostgreSQL (14+) first
# tries to make room on a full leaf page by deleting entries of older row versions
# ("bottom-up deletion"); in a batch rewriting 100,000 rows those versions are still
# live, so every try fails and costs a third of the statement. Naming the columns
# skips the try: one UPDATE of all 1.1 million charges took 24 s instead of 38 s.
_ISSUE_BATCH = """
UPDATE charges AS c
SET nosso_numero = b.nosso_numero,
    barcode = b.barcode,
    digitable_line = b.digitable_line,
    pix_code = b.pix_code,
    issued_at = now(),
    status = 'issued',
    debt_id = c.debt_id,
    debtor_id = c.debtor_id,
    import_id = c.import_id,
    due_date = c.due_date,
    amount = c.amount
FROM boleto_batch AS b
WHERE c.id = b.id
  AND c.id BETWEEN :first_id AND :last_id
  AND c.status = 'pending'
  AND c.nosso_numero IS NULL
"""

_CHARGE_FOR_BOLETO = """
SELECT c.id, c.debt_id, c.amount, c.due_date, c.status, c.payer_name, c.payer_email,
       c.nosso_numero, c.barcode, c.digitable_line, c.pix_code, c.issued_at,
       d.government_id
FROM charges AS c
JOIN debtors AS d ON d.id = c.debtor_id
WHERE c.id = :id
"""


@dataclass(frozen=True)
class PendingBatch:
    """Pending charges claimed for issuing, aligned by position."""

    ids: np.ndarray  # int64
    amounts_cents: np.ndarray  # int64
    due_dates: np.ndarray  # datetime64[D]
    nosso_numeros: np.ndarray  # int64, one fresh number per charge

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class ChargeWithBoleto(TypedDict):
    """A charge with its boleto fields. The boleto's fields (nosso_numero, barcode,
    digitable_line, issued_at) are None until it is issued, all four together (002's
    constraint); pix_code is None without a Pix key too."""

    id: int
    debt_id: str
    amount: Decimal
    due_date: date
    status: str
    payer_name: str
    payer_email: str
    nosso_numero: int | None
    barcode: str | None
    digitable_line: str | None
    pix_code: str | None
    issued_at: datetime | None


class BoletoCharge(ChargeWithBoleto):
    """A charge with its boleto fields and the payer's document."""

    government_id: str


def lock_issuing(conn: Connection) -> None:
    """Wait for any other issuer's batch to commit; held until this transaction ends."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ISSUE_LOCK_KEY})


def _import_filter(import_id: int | None) -> str:
    return "" if import_id is None else "AND import_id = :import_id"


def claim_pending(
    conn: Connection,
    *,
    after_id: int,
    import_id: int | None,
    limit: int,
    first_due_date: date,
    max_amount: Decimal,
) -> PendingBatch:
    """The next pending charges after `after_id`, each given a new nosso número."""
    sql = _CLAIM_PENDING.format(import_filter=_import_filter(import_id))
    ids, cents, due_days, numbers = conn.execute(
        text(sql),
        {
            "after_id": after_id,
            "import_id": import_id,
            "first_due_date": first_due_date,
            "max_amount": max_amount,
            "limit": limit,
        },
    ).one()
    return PendingBatch(
        ids=np.array(ids, dtype=np.int64),
        amounts_cents=np.array(cents, dtype=np.int64),
        due_dates=np.array(due_days, dtype="datetime64[D]"),
        nosso_numeros=np.array(numbers, dtype=np.int64),
    )


def count_unissuable(
    conn: Connection, *, import_id: int | None, first_due_date: date, max_amount: Decimal
) -> int:
    sql = _COUNT_UNISSUABLE.format(import_filter=_import_filter(import_id))
    return conn.execute(
        text(sql),
        {"import_id": import_id, "first_due_date": first_due_date, "max_amount": max_amount},
    ).scalar_one()


def store_issued(conn: Connection, *, boletos: pa.Table) -> int:
    """Write a batch of computed boletos (columns BATCH_COLUMNS, sorted by id).

    Returns how many charges became 'issued'; rows whose charge is no longer pending
    are dropped, and their nosso números are simply never used.
    """
    if boletos.num_rows == 0:
        return 0
    ids = boletos.column("id")
    conn.exec_driver_sql(_CREATE_BATCH)
    copy_table(conn, table=boletos, target="boleto_batch", columns=", ".join(BATCH_COLUMNS))
    # No ANALYZE: the planner sizes a never-analysed table by its pages, which is enough
    # to pick a hash join on this id range (ANALYZE cost 0.1 s a batch, for the same plan).
    return conn.execute(
        text(_ISSUE_BATCH),
        {"first_id": ids[0].as_py(), "last_id": ids[-1].as_py()},
    ).rowcount


def charge_for_boleto(engine: Engine, charge_id: int) -> BoletoCharge | None:
    """A charge with its boleto fields and the payer's document, or None."""
    with engine.connect() as conn:
        row = conn.execute(text(_CHARGE_FOR_BOLETO), {"id": charge_id}).mappings().first()
        return cast(BoletoCharge, dict(row)) if row else None
