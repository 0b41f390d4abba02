"""Queries on the files exchanged with the bank: remessas (and the charges each carries),
the NSA counter, retornos and their lines, and the charge's side of what the bank said.

Every function takes the caller's connection unless it reads a history for a page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

import psycopg
from sqlalchemy import Connection, Engine, text

_REMESSA_LOCK = 7_301_011  # one remessa generated at a time: the same charges never twice
_LIVE_RETORNO_LOCK = 7_301_012  # pg_advisory_lock(class, retorno id): "this import is alive"

RETORNO_COUNTS = (
    "entries", "registered", "rejected", "liquidated", "written_off", "unchanged", "unknown",
    "ignored", "paid_amount", "credited_amount", "fees",
)  # fmt: skip

INTERRUPTED_RETORNO = (
    "The import of this retorno stopped before it finished (the program ended or lost the "
    "database). What it had applied stays applied; import the file again to finish it: "
    "nothing is applied twice."
)


# --- Remessa ---------------------------------------------------------------------------


def try_lock_remessa(conn: Connection) -> bool:
    """Take the remessa's lock until the transaction ends; False when someone holds it."""
    return bool(
        conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _REMESSA_LOCK}
        ).scalar_one()
    )


def next_nsa(conn: Connection, bank_code: str) -> int:
    """The bank's next file sequence number, taken in the caller's transaction."""
    return conn.execute(
        text(
            """
            INSERT INTO bank_file_sequences AS s (bank_code, last_nsa) VALUES (:bank, 1)
            ON CONFLICT (bank_code) DO UPDATE SET last_nsa = s.last_nsa + 1
            RETURNING last_nsa
            """
        ),
        {"bank": bank_code},
    ).scalar_one()


# Charges still to send, numbered per kind in id order, in one snapshot (one statement):
# issued boletos not yet sent for registration in their current attempt (the first, or
# the one an operator opened by sending a refused registration again), and canceled ones
# whose current registration was sent (and not refused by the bank) and whose write-off
# was never asked for.
_COLLECT = """
CREATE TEMPORARY TABLE remessa_candidates ON COMMIT DROP AS
SELECT kind, charge_id, attempt,
       row_number() OVER (PARTITION BY kind ORDER BY charge_id) AS n
FROM (
    SELECT 'registration' AS kind, c.id AS charge_id,
           coalesce(c.registration_attempt, 1) AS attempt
    FROM charges AS c
    WHERE c.status = 'issued'
      AND NOT EXISTS (SELECT 1 FROM remessa_items AS i
                      WHERE i.charge_id = c.id AND i.kind = 'registration'
                        AND i.attempt = coalesce(c.registration_attempt, 1))
    UNION ALL
    SELECT 'write_off', c.id, 1
    FROM charges AS c
    WHERE c.status = 'canceled' AND c.registration_rejection IS NULL
      AND c.written_off_at IS NULL
      AND EXISTS (SELECT 1 FROM remessa_items AS i
                  WHERE i.charge_id = c.id AND i.kind = 'registration'
                    AND i.attempt = coalesce(c.registration_attempt, 1))
      AND NOT EXISTS (SELECT 1 FROM remessa_items AS i
                      WHERE i.charge_id = c.id AND i.kind = 'write_off')
) AS candidates
"""


def collect_candidates(conn: Connection) -> dict[str, int]:
    """Gather what the next remessa carries (a temporary table, dropped at commit);
    returns how many of each kind."""
    # Sorting a file's 33,333 charges by their position in it spilled to disk with the
    # default 4 MB (EXPLAIN ANALYZE); this transaction only.
    conn.execute(text("SET LOCAL work_mem = '64MB'"))
    conn.execute(text(_COLLECT))
    rows = conn.execute(text("SELECT kind, count(*) FROM remessa_candidates GROUP BY kind"))
    counts = {"registration": 0, "write_off": 0}
    counts.update({kind: int(count) for kind, count in rows})
    return counts


def create_remessa(
    conn: Connection,
    *,
    bank_code: str,
    layout: str,
    nsa: int,
    file_name: str,
    generated_at: datetime,
    actor: str,
) -> int:
    return conn.execute(
        text(
            """
            INSERT INTO remessas (bank_code, layout, nsa, file_name, generated_at, actor)
            VALUES (:bank_code, :layout, :nsa, :file_name, :generated_at, :actor)
            RETURNING id
            """
        ),
        {
            "bank_code": bank_code,
            "layout": layout,
            "nsa": nsa,
            "file_name": file_name,
            "generated_at": generated_at,
            "actor": actor,
        },
    ).scalar_one()


def assign_items(
    conn: Connection,
    *,
    kind: str,
    remessa_ids: Sequence[int],
    first_numbers: Sequence[int],
    offsets: Sequence[int],
) -> int:
    """Record the candidates of `kind` in their remessas: file k takes the candidates
    numbered from first_numbers[k] (ascending) on, after offsets[k] items of that file."""
    if not remessa_ids:
        return 0
    return conn.execute(
        text(
            """
            INSERT INTO remessa_items (remessa_id, position, charge_id, kind, attempt)
            SELECT (CAST(:ids AS bigint[]))[b],
                   (CAST(:offsets AS integer[]))[b] + (n - (CAST(:firsts AS bigint[]))[b]) + 1,
                   charge_id, kind, attempt
            FROM (
                SELECT charge_id, kind, attempt, n,
                       width_bucket(n, CAST(:firsts AS bigint[])) AS b
                FROM remessa_candidates
                WHERE kind = :kind
            ) AS numbered
            """
        ),
        {
            "kind": kind,
            "ids": list(remessa_ids),
            "firsts": list(first_numbers),
            "offsets": list(offsets),
        },
    ).rowcount


# What segment P, Q and R need of each charge, dates as DDMMAAAA and money in cents,
# computed by the server as the rows stream out, in the order of ITEM_COLUMNS. A COPY:
# the server writes rows while the caller formats the ones before (a server-side
# cursor waits for each fetch), and psycopg reads them without building row objects.
ITEM_COLUMNS = (
    "kind", "id", "debt_id", "nosso_numero", "due_date", "amount", "issued_on",
    "day_after_due", "interest_per_day", "discount_date", "discount_amount",
    "payer_document", "payer_name", "payer_address", "payer_district", "payer_zip",
    "payer_city", "payer_state",
)  # fmt: skip
_ITEMS = """
COPY (
SELECT i.kind, c.id, c.debt_id, c.nosso_numero,
       to_char(c.due_date, 'DDMMYYYY') AS due_date,
       CAST(c.amount * 100 AS bigint) AS amount,
       to_char(c.issued_at AT TIME ZONE CAST(%(tz)s AS text), 'DDMMYYYY') AS issued_on,
       to_char(c.due_date + 1, 'DDMMYYYY') AS day_after_due,
       CASE WHEN CAST(%(interest)s AS numeric) > 0 THEN
           greatest(CAST(round(c.amount * CAST(%(interest)s AS numeric) / 3000, 2) * 100
                         AS bigint), 1)
       ELSE 0 END AS interest_per_day,
       to_char(c.due_date - CAST(%(discount_days)s AS integer), 'DDMMYYYY') AS discount_date,
       CAST(round(c.amount * CAST(%(discount)s AS numeric) / 100, 2) * 100 AS bigint)
           AS discount_amount,
       d.government_id AS payer_document, c.payer_name,
       coalesce(a.street, '') AS payer_address, coalesce(a.district, '') AS payer_district,
       coalesce(a.zip_code, '') AS payer_zip, coalesce(a.city, '') AS payer_city,
       coalesce(a.state, '') AS payer_state
FROM remessa_items AS i
JOIN charges AS c ON c.id = i.charge_id
JOIN debtors AS d ON d.id = c.debtor_id
LEFT JOIN debtor_addresses AS a ON a.debtor_id = c.debtor_id
WHERE i.remessa_id = %(remessa_id)s
ORDER BY i.position
) TO STDOUT
"""


def stream_items(
    conn: Connection,
    *,
    remessa_id: int,
    timezone: str,
    interest_monthly_percent: Decimal,
    discount_percent: Decimal,
    discount_days: int,
) -> Iterator[list[str]]:
    """A remessa's charges in file order, each a list of text in the order of
    ITEM_COLUMNS (the address fields empty for a debtor without one), streamed by COPY in
    the caller's transaction: never all in memory. The COPY's blocks are cut into rows
    here (a split per row; psycopg's row reader costs more than the remessa's lines)."""
    raw = cast(psycopg.Connection, conn.connection.dbapi_connection)
    encoding = raw.info.encoding
    params = {
        "remessa_id": remessa_id,
        "tz": timezone,
        "interest": interest_monthly_percent,
        "discount": discount_percent,
        "discount_days": discount_days,
    }
    with raw.cursor() as cursor, cursor.copy(_ITEMS, params) as copy:
        rest = b""
        for block in copy:
            lines = (rest + bytes(block)).split(b"\n")
            rest = lines.pop()  # the start of a row the next block ends
            for line in lines:
                text = line.decode(encoding)
                if "\\" in text:  # a value with a tab, a line break or a backslash
                    yield [_COPY_ESCAPE.sub(_unescape, value) for value in text.split("\t")]
                else:
                    yield text.split("\t")
        if rest:
            raise RuntimeError("the COPY of the remessa's charges ended inside a row")


# COPY's text format: a backslash before b f n r t v stands for that control character,
# before anything else for that character itself (\\ is a backslash). The query has no
# NULL (coalesce): \N never comes.
_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_COPY_CONTROLS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape(match: re.Match[str]) -> str:
    return _COPY_CONTROLS.get(match[1], match[1])


def store_remessa(
    conn: Connection,
    *,
    remessa_id: int,
    registrations: int,
    write_offs: int,
    records: int,
    total_amount: Decimal,
    size_bytes: int,
    sha256: str,
    content: bytes,
    without_address: int = 0,
) -> None:
    conn.execute(
        text(
            """
            UPDATE remessas SET registrations = :registrations, write_offs = :write_offs,
                   without_address = :without_address, records = :records,
                   total_amount = :total_amount, size_bytes = :size_bytes,
                   sha256 = :sha256, content = :content
            WHERE id = :id
            """
        ),
        {
            "id": remessa_id,
            "registrations": registrations,
            "write_offs": write_offs,
            "without_address": without_address,
            "records": records,
            "total_amount": total_amount,
            "size_bytes": size_bytes,
            "sha256": sha256,
            "content": content,
        },
    )


class RemessaRow(TypedDict):
    """A remessa generated, without its content."""

    id: int
    nsa: int
    bank_code: str
    layout: str
    file_name: str
    generated_at: datetime
    actor: str
    registrations: int
    write_offs: int
    without_address: int  # registrations sent with segment Q's address blank
    records: int
    total_amount: Decimal
    size_bytes: int
    sha256: str


class RemessaContent(TypedDict):
    """A remessa's file as stored: zlib-compressed bytes and the sha256 of the original."""

    id: int
    nsa: int
    file_name: str
    sha256: str
    content: bytes


class RetornoRow(TypedDict):
    """A retorno received, with what its titles did; counts None until it is done."""

    id: int
    file_name: str
    nsa: int
    generated_on: date | None
    status: str
    actor: str
    entries: int | None
    registered: int | None
    rejected: int | None
    liquidated: int | None
    written_off: int | None
    unchanged: int | None
    unknown: int | None
    ignored: int | None
    paid_amount: Decimal | None
    credited_amount: Decimal | None
    fees: Decimal | None
    started_at: datetime
    duration_seconds: Decimal | None
    error: str | None
    sha256: str


class RetornoItem(TypedDict):
    """What one title of a retorno did, with the debtId of its charge (None if not ours)."""

    line: int
    movement: str
    nosso_numero: str
    charge_id: int | None
    debt_id: str | None
    outcome: str
    detail: str | None
    paid_amount: Decimal | None
    credited_amount: Decimal | None
    fee: Decimal | None
    occurred_on: date | None
    credited_on: date | None
    payment_id: int | None


class BankCharge(TypedDict):
    """A charge as a retorno's title finds it by its nosso número."""

    id: int
    debt_id: str
    status: str
    amount: Decimal
    registered_at: datetime | None
    registration_rejection: str | None
    written_off_at: datetime | None


def list_remessas(engine: Engine, *, limit: int = 200) -> list[RemessaRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT id, nsa, bank_code, layout, file_name, generated_at, actor,
                       registrations, write_offs, coalesce(without_address, 0) AS without_address,
                       records, total_amount, size_bytes, sha256
                FROM remessas
                ORDER BY generated_at DESC, id DESC
                LIMIT :limit
                """
            ),
            {"limit": limit},
        ).mappings()
        return cast(list[RemessaRow], [dict(row) for row in rows])


def remessa_content(conn: Connection, remessa_id: int) -> RemessaContent | None:
    row = (
        conn.execute(
            text("SELECT id, nsa, file_name, sha256, content FROM remessas WHERE id = :id"),
            {"id": remessa_id},
        )
        .mappings()
        .first()
    )
    return cast(RemessaContent, dict(row)) if row else None


# --- Retorno ---------------------------------------------------------------------------


def create_retorno(
    conn: Connection,
    *,
    file_name: str,
    sha256: str,
    size_bytes: int,
    bank_code: str,
    nsa: int,
    generated_on: date | None,
    actor: str,
) -> int:
    return conn.execute(
        text(
            """
            INSERT INTO retornos
                (file_name, sha256, size_bytes, bank_code, nsa, generated_on, actor)
            VALUES (:file_name, :sha256, :size_bytes, :bank_code, :nsa, :generated_on, :actor)
            RETURNING id
            """
        ),
        {
            "file_name": file_name,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "bank_code": bank_code,
            "nsa": nsa,
            "generated_on": generated_on,
            "actor": actor,
        },
    ).scalar_one()


def hold_retorno(conn: Connection, retorno_id: int) -> None:
    """The session lock that says the import of `retorno_id` is alive (see imports)."""
    conn.execute(
        text("SELECT pg_advisory_lock(:ns, CAST(:id AS integer))"),
        {"ns": _LIVE_RETORNO_LOCK, "id": retorno_id},
    )


def release_retorno(conn: Connection, retorno_id: int) -> None:
    conn.execute(
        text("SELECT pg_advisory_unlock(:ns, CAST(:id AS integer))"),
        {"ns": _LIVE_RETORNO_LOCK, "id": retorno_id},
    )


def finish_retorno(
    conn: Connection,
    *,
    retorno_id: int,
    status: str,
    seconds: float,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    counts = counts or {}
    conn.execute(
        text(
            """
            UPDATE retornos SET status = :status, entries = :entries,
                   registered = :registered, rejected = :rejected,
                   liquidated = :liquidated, written_off = :written_off,
                   unchanged = :unchanged, unknown = :unknown, ignored = :ignored,
                   paid_amount = :paid_amount, credited_amount = :credited_amount,
                   fees = :fees, finished_at = now(), duration_seconds = :seconds,
                   error = :error
            WHERE id = :id
            """
        ),
        {
            "id": retorno_id,
            "status": status,
            "seconds": round(seconds, 3),
            "error": error,
            **{name: counts.get(name) for name in RETORNO_COUNTS},
        },
    )


def mark_interrupted_retornos(engine: Engine) -> int:
    """Close retornos left 'running' by a process that died: nobody holds their lock."""
    with engine.begin() as conn:
        running = (
            conn.execute(
                text("SELECT id FROM retornos WHERE status = 'running' FOR UPDATE SKIP LOCKED")
            )
            .scalars()
            .all()
        )
        orphans = [
            retorno_id
            for retorno_id in running
            if conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, CAST(:id AS integer))"),
                {"ns": _LIVE_RETORNO_LOCK, "id": retorno_id},
            ).scalar_one()
        ]
        if not orphans:
            return 0
        return conn.execute(
            text(
                "UPDATE retornos SET status = 'failed', error = :error, finished_at = now() "
                "WHERE id = ANY(:ids)"
            ),
            {"error": INTERRUPTED_RETORNO, "ids": orphans},
        ).rowcount


def list_retornos(engine: Engine, *, limit: int = 200) -> list[RetornoRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT id, file_name, nsa, generated_on, status, actor, entries, registered,
                       rejected, liquidated, written_off, unchanged, unknown, ignored,
                       paid_amount, credited_amount, fees, started_at, duration_seconds,
                       error, sha256
                FROM retornos
                ORDER BY started_at DESC, id DESC
                LIMIT :limit
                """
            ),
            {"limit": limit},
        ).mappings()
        return cast(list[RetornoRow], [dict(row) for row in rows])


def retorno_items(conn: Connection, retorno_id: int) -> list[RetornoItem]:
    rows = conn.execute(
        text(
            """
            SELECT i.line, i.movement, i.nosso_numero, i.charge_id, c.debt_id, i.outcome,
                   i.detail, i.paid_amount, i.credited_amount, i.fee, i.occurred_on,
                   i.credited_on, i.payment_id
            FROM retorno_items AS i
            LEFT JOIN charges AS c ON c.id = i.charge_id
            WHERE i.retorno_id = :id
            ORDER BY i.line
            """
        ),
        {"id": retorno_id},
    ).mappings()
    return cast(list[RetornoItem], [dict(row) for row in rows])


def insert_retorno_item(conn: Connection, **values: Any) -> None:
    conn.execute(
        text(
            """
            INSERT INTO retorno_items
                (retorno_id, line, movement, nosso_numero, charge_id, outcome, detail,
                 paid_amount, credited_amount, fee, occurred_on, credited_on, payment_id)
            VALUES
                (:retorno_id, :line, :movement, :nosso_numero, :charge_id, :outcome, :detail,
                 :paid_amount, :credited_amount, :fee, :occurred_on, :credited_on, :payment_id)
            """
        ),
        values,
    )


_BANK_CHARGE = """
SELECT id, debt_id, status, amount, registered_at, registration_rejection, written_off_at
FROM charges WHERE nosso_numero = :nosso_numero
"""


def charge_by_nosso_numero(
    conn: Connection, nosso_numero: int, *, lock: bool = False
) -> BankCharge | None:
    """The charge of a boleto, its row locked until the transaction ends if `lock`."""
    sql = _BANK_CHARGE + (" FOR UPDATE" if lock else "")
    row = conn.execute(text(sql), {"nosso_numero": nosso_numero}).mappings().first()
    return cast(BankCharge, dict(row)) if row else None


def mark_registered(conn: Connection, charge_id: int, *, status: str) -> None:
    conn.execute(
        text(
            "UPDATE charges SET status = :status, registered_at = now(), "
            "registration_rejection = NULL WHERE id = :id"
        ),
        {"id": charge_id, "status": status},
    )


def mark_rejected(conn: Connection, charge_id: int, reason: str) -> None:
    conn.execute(
        text("UPDATE charges SET registration_rejection = :reason WHERE id = :id"),
        {"id": charge_id, "reason": reason},
    )


_RESEND_CHARGE = """
SELECT id, debt_id, status, registration_rejection, registration_attempt
FROM charges WHERE id = :id FOR UPDATE
"""


def charge_for_resend(conn: Connection, charge_id: int) -> dict[str, Any] | None:
    """The charge's registration state, its row locked until the transaction ends."""
    row = conn.execute(text(_RESEND_CHARGE), {"id": charge_id}).mappings().first()
    return dict(row) if row else None


def open_registration_attempt(conn: Connection, charge_id: int) -> int:
    """Clear the bank's refusal and open the charge's next registration attempt (the
    next remessa carries it again); returns the attempt's number."""
    return int(
        conn.execute(
            text(
                "UPDATE charges SET registration_rejection = NULL, "
                "registration_attempt = coalesce(registration_attempt, 1) + 1 "
                "WHERE id = :id RETURNING registration_attempt"
            ),
            {"id": charge_id},
        ).scalar_one()
    )


def save_debtor_address(
    conn: Connection,
    *,
    debtor_id: int,
    street: str,
    district: str,
    zip_code: str,
    city: str,
    state: str,
    actor: str,
) -> None:
    """Store (or replace) the postal address segment Q carries for the debtor."""
    conn.execute(
        text(
            """
            INSERT INTO debtor_addresses
                (debtor_id, street, district, zip_code, city, state, updated_by)
            VALUES (:debtor_id, :street, :district, :zip_code, :city, :state, :actor)
            ON CONFLICT (debtor_id) DO UPDATE SET
                street = EXCLUDED.street, district = EXCLUDED.district,
                zip_code = EXCLUDED.zip_code, city = EXCLUDED.city,
                state = EXCLUDED.state, updated_by = EXCLUDED.updated_by
            """
        ),
        {
            "debtor_id": debtor_id,
            "street": street,
            "district": district,
            "zip_code": zip_code,
            "city": city,
            "state": state,
            "actor": actor,
        },
    )


def debtor_exists(conn: Connection, debtor_id: int) -> bool:
    return (
        conn.execute(text("SELECT 1 FROM debtors WHERE id = :id"), {"id": debtor_id}).first()
        is not None
    )


def mark_written_off(conn: Connection, charge_id: int, *, status: str) -> None:
    conn.execute(
        text("UPDATE charges SET status = :status, written_off_at = now() WHERE id = :id"),
        {"id": charge_id, "status": status},
    )


class DebtorAddress(TypedDict):
    street: str
    district: str
    zip_code: str
    city: str
    state: str


def debtor_address(conn: Connection, debtor_id: int) -> DebtorAddress | None:
    """The postal address stored for a debtor (segment Q), if any."""
    row = (
        conn.execute(
            text(
                "SELECT street, district, zip_code, city, state FROM debtor_addresses "
                "WHERE debtor_id = :debtor_id"
            ),
            {"debtor_id": debtor_id},
        )
        .mappings()
        .first()
    )
    return cast(DebtorAddress, dict(row)) if row else None
