"""Debtor files as operators upload them, and the import that takes them in."""

from __future__ import annotations

from sqlalchemy import Engine, text

from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import ImportResult, import_file
from tests.support.actors import OPERATOR

HEADER = "name,governmentId,email,debtAmount,debtDueDate,debtId"
VALID_CPFS = ["52998224725", "11144477735", "12345678909", "93541134780", "28625587887"]
# One valid row, by column and as a line of the file.
GOOD_ROW = {
    "name": "Ana Souza",
    "governmentId": "529.982.247-25",
    "email": "ana@example.com",
    "debtAmount": "1000.00",
    "debtDueDate": "2025-01-31",
    "debtId": "D-1",
}
ROW = ",".join(GOOD_ROW.values())


def debtor_csv(rows: list[tuple[str, ...]], header: str = HEADER) -> bytes:
    return ("\n".join([header, *(",".join(row) for row in rows)]) + "\n").encode()


def sample_rows(count: int, *, start: int = 0) -> list[tuple[str, ...]]:
    return [
        (
            f"Debtor {i}",
            VALID_CPFS[i % len(VALID_CPFS)],
            f"debtor{i}@example.com",
            f"{100 + i}.50",
            "2024-05-10",
            f"debt-{i:06d}",
        )
        for i in range(start, start + count)
    ]


def run_import(
    db: Engine, data: bytes, *, lenient: bool = False, name: str = "debtors.csv"
) -> ImportResult:
    return import_file(
        actor=OPERATOR, engine=db, data=data, file_name=name, lenient_documents=lenient
    )


def import_rows(db: Engine, count: int) -> dict[str, int]:
    """`count` charges of 5 debtors, amounts 101.50, 102.50... due in 2030; debtId -> id."""
    rows = [
        (
            f"Débora Conceição {i % 5}",
            VALID_CPFS[i % 5],
            f"debora{i % 5}@example.com",
            f"{100 + i}.50",
            f"2030-01-{1 + i % 28:02d}",
            f"debt-{i:03d}",
        )
        for i in range(1, count + 1)
    ]
    result = import_file(
        actor=OPERATOR, engine=db, data=debtor_csv(rows), file_name="x.csv", lenient_documents=True
    )
    assert result.imported == count, result
    with db.connect() as conn:
        return dict(conn.execute(text("SELECT debt_id, id FROM charges")).all())


def import_charges(db: Engine, *rows: tuple[str, str]) -> dict[str, int]:
    """Create charges through the real import from (debtId, amount); return debtId -> id."""
    lines = [",".join(REQUIRED_COLUMNS)] + [
        f"Ana Souza,{index:011d},ana@example.com,{amount},2030-01-31,{debt_id}"
        for index, (debt_id, amount) in enumerate(rows, start=1)
    ]
    result = import_file(
        actor=OPERATOR,
        engine=db,
        data="\n".join(lines).encode(),
        file_name="x.csv",
        lenient_documents=True,
    )
    assert result.status == "done" and result.imported == len(rows), result
    with db.connect() as conn:
        found = conn.execute(text("SELECT debt_id, id FROM charges")).all()
    return dict(found)
