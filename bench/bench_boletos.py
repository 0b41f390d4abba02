"""How issuing boletos for freshly imported charges compares with touching every row once.

(a) is the floor for any change to every charge: ``UPDATE charges SET updated_at =
now()`` in one statement, committed. Like the issue, it writes a new version of every
row and an entry in every index of charges (the rows are packed full after an import,
so no update can stay on its page as a HOT update). (a') is the same UPDATE naming the
indexed columns, as the issue's UPDATE does (see db/boletos.py: it spares PostgreSQL
the bottom-up index deletion passes that cannot succeed in a bulk rewrite). (b) is
``billing.boletos.issuing.issue_boletos``: claiming the pending charges in batches, nosso
números, barcodes, linhas digitáveis and Pix codes, and the batched UPDATE that stores
them. The goal is (b) well under a minute for 1.1 million charges.

Fairness: the file is imported once with ``import_file`` (timed too: the import now
ends by issuing its boletos); its charges are kept aside and, before each step, the
charges table is emptied and refilled with them as pending, with the import's own
INSERT order, so every step starts from the state an import leaves, after a
CHECKPOINT, and none pays for another's dead rows or dirty pages. Everything runs in a
database created for this run and dropped afterwards.

Usage:
    python -m bench.bench_boletos [--rows 1100000] [--database-url URL]
                                  [--batch-size N] [--repeat N] [--no-pix] [--breakdown]

Without --database-url (or DATABASE_URL) an embedded PostgreSQL is started in a
temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, text

from bench.generate import write_debtor_file
from bench.support import (
    add_database_url_option,
    benchmark_server,
    progress,
    scratch_database,
    server_version,
)
from billing.accounts.access import cli_actor
from billing.boletos.codes import is_valid_barcode
from billing.boletos.issuing import DEFAULT_BATCH_SIZE, issue_boletos
from billing.boletos.pix import is_valid_pix_payload
from billing.core.settings import Settings, get_settings
from billing.imports.service import import_file
from db.engine import make_engine
from db.migrations import migrate

T = TypeVar("T")
GOAL_SECONDS = 60.0
BENCH_PIX_KEY = "11222333000181"  # a CNPJ key; any key makes every boleto hybrid
CHARGE_COLUMNS = "debt_id, debtor_id, import_id, amount, due_date, payer_name, payer_email"
KEEP_CHARGES = f"CREATE UNLOGGED TABLE bench_charges AS SELECT {CHARGE_COLUMNS} FROM charges"
EMPTY_CHARGES = "TRUNCATE charges RESTART IDENTITY CASCADE"
# As db.loading inserts them: one statement, ordered by debt_id, all pending.
REFILL_CHARGES = (
    f"INSERT INTO charges ({CHARGE_COLUMNS}) "
    f"SELECT {CHARGE_COLUMNS} FROM bench_charges ORDER BY debt_id"
)
TOUCH_EVERY_ROW = "UPDATE charges SET updated_at = now()"
TOUCH_EVERY_ROW_NAMING_INDEXED = (
    "UPDATE charges SET updated_at = now(), debt_id = debt_id, debtor_id = debtor_id, "
    "import_id = import_id, due_date = due_date, amount = amount, status = status"
)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.breakdown:
        _show_batches()
    settings = dataclasses.replace(get_settings(), pix_key="" if args.no_pix else BENCH_PIX_KEY)
    with tempfile.TemporaryDirectory(prefix="bench_boletos_") as work:
        path = Path(work) / f"debtors_{args.rows}.csv"
        progress(f"generating {args.rows} rows")
        write_debtor_file(path, rows=args.rows)
        data = path.read_bytes()
        server_url, where = benchmark_server(args.database_url, prefix="bench_boletos")
        with scratch_database(server_url, prefix="bench_boletos") as url:
            engine = make_engine(url)
            try:
                migrate(engine)
                server = f"{server_version(url)} ({where})"
                progress("importing the file with import_file (which issues its boletos)")
                importing, result = _timed_import(engine, data, settings=settings)
                if (result.imported, result.issued) != (args.rows, args.rows):
                    raise RuntimeError(f"the import did not take and issue every row: {result}")
                with engine.begin() as conn:
                    conn.exec_driver_sql(KEEP_CHARGES)

                plain: list[float] = []
                naming: list[float] = []
                issuing: list[float] = []
                for round_number in range(1, args.repeat + 1):
                    progress(f"round {round_number}/{args.repeat}: (a) UPDATE of every charge")
                    plain.append(_timed(engine, args.rows, _execute, TOUCH_EVERY_ROW)[0])
                    progress(f"round {round_number}/{args.repeat}: (a') naming indexed columns")
                    naming.append(
                        _timed(engine, args.rows, _execute, TOUCH_EVERY_ROW_NAMING_INDEXED)[0]
                    )
                    progress(f"round {round_number}/{args.repeat}: (b) issue_boletos")
                    seconds, issued = _timed(engine, args.rows, _issue, args.batch_size, settings)
                    issuing.append(seconds)
                    _check_issued(engine, rows=args.rows, issued=issued, pix=not args.no_pix)
            finally:
                engine.dispose()

    a, a_naming, b = (statistics.median(times) for times in (plain, naming, issuing))
    goal = "met" if b < GOAL_SECONDS else "MISSED"
    pix = "off" if args.no_pix else "on"
    print(
        f"rows {args.rows}, server {server}, batch size {args.batch_size}, Pix {pix}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(_line("(a) UPDATE charges SET updated_at", f"{a:7.2f} s{_spread(plain)}"))
    print(_line("(a') the same, naming the indexed columns", f"{a_naming:7.2f} s{_spread(naming)}"))
    print(
        _line(
            "(b) issue_boletos",
            f"{b:7.2f} s{_spread(issuing)}   {args.rows / b:,.0f} boletos/s "
            f"(goal < {GOAL_SECONDS:g} s: {goal})",
        )
    )
    print(_line("ratio b/a", f"{b / a:7.2f}"))
    print(_line("ratio b/a'", f"{b / a_naming:7.2f}"))
    print(
        _line(
            "import_file of the same file, boletos included",
            f"{importing:7.2f} s   (issued {result.issued}, status {result.status})",
        )
    )
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_boletos",
        description="Time issue_boletos against one UPDATE of every charge.",
    )
    parser.add_argument("--rows", type=int, default=1_100_000, help="charges (default 1100000)")
    add_database_url_option(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"charges per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run (a), (a') and (b) this many times; medians"
    )
    parser.add_argument("--no-pix", action="store_true", help="issue without Pix codes")
    parser.add_argument(
        "--breakdown", action="store_true", help="print the time of each batch's steps"
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.batch_size < 1 or args.repeat < 1:
        parser.error("--rows, --batch-size and --repeat must be at least 1")
    return args


def _spread(seconds: list[float]) -> str:
    if len(seconds) == 1:
        return ""
    return "   (median of " + ", ".join(f"{s:.2f}" for s in seconds) + ")"


def _line(label: str, figures: str) -> str:
    return f"{label:<44}{figures}"


def _show_batches() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("billing.boletos.issuing")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)


def _execute(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)


def _checkpoint(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")


def _timed_import(engine: Engine, data: bytes, *, settings: Settings):
    _checkpoint(engine)
    started = time.perf_counter()
    result = import_file(
        actor=cli_actor(),
        engine=engine,
        data=data,
        file_name="bench.csv",
        lenient_documents=True,
        settings=settings,
    )
    return time.perf_counter() - started, result


def _issue(engine: Engine, batch_size: int, settings: Settings) -> int:
    return issue_boletos(engine, batch_size=batch_size, settings=settings)


def _timed(engine: Engine, rows: int, step: Callable[..., T], *args: object) -> tuple[float, T]:
    """Seconds of `step(engine, *args)` on freshly refilled pending charges, after a
    CHECKPOINT, and what it returned."""
    with engine.begin() as conn:
        conn.exec_driver_sql(EMPTY_CHARGES)
        refilled = conn.exec_driver_sql(REFILL_CHARGES).rowcount
    if refilled != rows:
        raise RuntimeError(f"refilled {refilled} charges, not {rows}")
    _checkpoint(engine)
    started = time.perf_counter()
    value = step(engine, *args)
    return time.perf_counter() - started, value


def _check_issued(engine: Engine, *, rows: int, issued: int, pix: bool) -> None:
    """Every charge issued once, with distinct numbers; a sample of codes validated."""
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'issued'),"
                " count(DISTINCT nosso_numero), count(pix_code) FROM charges"
            )
        ).one()
        sample = conn.execute(
            text("SELECT barcode, pix_code FROM charges TABLESAMPLE SYSTEM (1) LIMIT 1000")
        ).all()
    expected = (rows, rows, rows if pix else 0)
    if issued != rows or tuple(counts) != expected:
        raise RuntimeError(f"issued {issued}; (issued, numbers, Pix codes) = {tuple(counts)}")
    for barcode, pix_code in sample:
        if not is_valid_barcode(barcode) or (pix and not is_valid_pix_payload(pix_code)):
            raise RuntimeError(f"invalid codes were stored: {barcode} {pix_code}")


if __name__ == "__main__":
    sys.exit(main())
