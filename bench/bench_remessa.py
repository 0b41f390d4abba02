"""The remessa for 1.1M charges: seconds and peak memory; it must stream.

Usage: python -m bench.bench_remessa [--rows N] [--database-url URL] [--json]

A child process writes the debtor file and imports it (every charge issued); this
process then generates the remessa of every charge, as `python -m billing remessa`
does, and reports:

(a) the floor: `COPY (the charges joined with their debtors) TO STDOUT` into a file,
    the same rows read and written with nothing computed;
(b) generate_remessa: candidates gathered, every charge recorded in remessa_items,
    each file's charges streamed from a server-side cursor into its lines, written to
    disk and kept compressed in the database, the whole in one transaction;
the ratio b/a, and the peak memory of this process (VmHWM: the child's import is not
in it), which stays near the size of one file's compressed copy, not of the remessa.
Every file is checked: 240 characters a line, its trailer's count, and one
registration per charge across the files.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from bench.support import (
    add_database_url_option,
    benchmark_server,
    peak_memory_bytes,
    progress,
    scratch_database,
    server_version,
)

FLOOR = """
COPY (SELECT c.id, c.debt_id, c.nosso_numero, c.amount, c.due_date, c.issued_at,
             c.payer_name, d.government_id
      FROM charges AS c JOIN debtors AS d ON d.id = c.debtor_id ORDER BY c.id) TO STDOUT
"""


def _load(url: str, rows: int, folder: str) -> None:
    """In a child process: the debtor file written and imported, boletos issued."""
    from bench.generate import write_debtor_file
    from billing.accounts.access import cli_actor
    from billing.imports.service import import_file
    from db.engine import make_engine
    from db.migrations import migrate

    path = Path(folder) / f"debtors_{rows}.csv"
    write_debtor_file(path, rows=rows)
    engine = make_engine(url)
    migrate(engine)
    result = import_file(
        actor=cli_actor(),
        engine=engine,
        data=path.read_bytes(),
        file_name=path.name,
        lenient_documents=True,
    )
    path.unlink()
    engine.dispose()
    if (result.imported, result.issued) != (rows, rows):
        raise SystemExit(f"the import did not take and issue every row: {result}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from billing.accounts.access import cli_actor
    from billing.cnab.service import generate_remessa
    from db.engine import make_engine

    server_url, where = benchmark_server(args.database_url, prefix="bench_remessa")
    with (
        scratch_database(server_url, prefix="bench_remessa") as url,
        tempfile.TemporaryDirectory(prefix="bench_remessa_") as work,
    ):
        progress(f"importing {args.rows} charges in a child process")
        child = multiprocessing.get_context("spawn").Process(
            target=_load, args=(url, args.rows, work)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"the import failed (exit {child.exitcode})")
        engine = make_engine(url)
        try:
            server = f"{server_version(url)} ({where})"
            progress("(a) COPY of the same rows to a file")
            started = time.perf_counter()
            with engine.connect() as conn, open(Path(work) / "floor.txt", "wb") as out:
                cursor = conn.connection.dbapi_connection.cursor()
                with cursor.copy(FLOOR) as copy:
                    for block in copy:
                        out.write(block)
            floor = time.perf_counter() - started
            progress("(b) generate_remessa")
            started = time.perf_counter()
            result = generate_remessa(engine, actor=cli_actor(), out=Path(work) / "remessa.rem")
            seconds = time.perf_counter() - started
            peak = peak_memory_bytes()
            size = _check(result, rows=args.rows)
        finally:
            engine.dispose()
    report = {
        "rows": args.rows,
        "server": server,
        "files": len(result.files),
        "registrations": result.registrations,
        "bytes": size,
        "floor_seconds": round(floor, 2),
        "remessa_seconds": round(seconds, 2),
        "ratio": round(seconds / floor, 2),
        "charges_per_second": round(args.rows / seconds),
        "peak_memory_bytes": peak,
        "load_average": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"rows {args.rows}, server {server}, load average {report['load_average']} on "
        f"{report['cpus']} CPUs"
    )
    print(f"(a) COPY of the charges and debtors to a file   {floor:7.2f} s")
    print(
        f"(b) generate_remessa                            {seconds:7.2f} s   "
        f"{report['charges_per_second']:,} charges/s, {len(result.files)} files "
        f"(NSA {result.files[0].nsa}-{result.files[-1].nsa}), {size / 1e6:,.0f} MB"
    )
    print(f"ratio b/a                                       {seconds / floor:7.2f}")
    print(f"peak memory of this process                     {peak / 2**20:7.0f} MB")
    return 0


def _check(result, *, rows: int) -> int:
    """Every file whole: 240-character lines, trailer counts, each charge once."""
    if result.registrations != rows:
        raise SystemExit(f"{result.registrations} registrations for {rows} charges")
    size = 0
    for item in result.files:
        path = Path(item.path)
        lines = 0
        with path.open("rb") as file:
            for line in file:
                if len(line) != 242:
                    raise SystemExit(f"{path}: a line of {len(line) - 2} characters")
                lines += 1
                last = line
        if int(last[23:29]) != lines or lines != item.records:
            raise SystemExit(f"{path}: the trailer counts {int(last[23:29])}, not {lines}")
        size += path.stat().st_size
    return size


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_remessa", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_100_000, help="charges (default 1100000)")
    add_database_url_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
