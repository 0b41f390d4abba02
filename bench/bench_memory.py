"""The import's memory does not grow with the file (issue 9).

`python -m billing import FILE` is run, as an operator runs it, on debtor files of
1.1M and 5.5M rows (--rows), each into a database of its own, and the peak resident
memory of that process (ru_maxrss of the child, as the kernel counts it) is reported
with the seconds it took. The goal: at most 1 GB whatever the file's size. The CLI reads
the file a piece at a time (billing.imports.reading.file_pieces); the bytes of a whole file are
never held. The files are written by a separate process, so this one stays small: a child
starts out with its parent's resident pages, which its peak would otherwise count.

The CLI connects as the application's role (DATABASE_URL) and migrates as the owner
(MIGRATION_DATABASE_URL), in a database created for the run and dropped afterwards.

Usage:
    python -m bench.bench_memory [--rows 1100000 5500000] [--database-url URL] [--json]

Without --database-url (or DATABASE_URL) an embedded PostgreSQL is started in a
temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.support import (
    add_database_url_option,
    application_role,
    benchmark_server,
    progress,
    scratch_database,
    server_version,
)
from db.engine import make_engine
from db.migrations import migrate

MEMORY_GOAL_BYTES = 1 << 30  # 1 GB
ROWS = (1_100_000, 5_500_000)


@dataclass(frozen=True)
class MemoryRun:
    rows: int
    file_mb: float
    seconds: float
    peak_rss_bytes: int
    status: str
    imported: int

    @property
    def met(self) -> bool:
        return self.status == "done" and self.peak_rss_bytes <= MEMORY_GOAL_BYTES


def import_with_the_cli(server_url: str, path: Path, *, rows: int) -> MemoryRun:
    """Import `path` with `python -m billing import` into a new database; measure it."""
    with scratch_database(server_url, prefix="bench_memory") as owner_url:
        engine = make_engine(owner_url)
        try:
            with application_role(owner_url, prefix="bench_memory") as (role, app_url):
                migrate(engine, app_role=role)
                env = os.environ | {"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url}
                seconds, peak_kb, output = _run_measured(
                    [sys.executable, "-m", "billing", "import", str(path), "--json"], env=env
                )
        finally:
            engine.dispose()
    try:
        result = json.loads(output)
    except json.JSONDecodeError:
        raise RuntimeError(f"the CLI failed: {output[-2000:]}") from None
    return MemoryRun(
        rows=rows,
        file_mb=round(path.stat().st_size / 1_000_000, 1),
        seconds=round(seconds, 2),
        peak_rss_bytes=peak_kb * 1024,
        status=result["status"],
        imported=result["imported"],
    )


def _run_measured(command: list[str], *, env: dict[str, str]) -> tuple[float, int, str]:
    """Run `command`; return its seconds, its own peak RSS in KB (wait4's rusage is that
    child's alone) and what it printed."""
    with tempfile.TemporaryFile(mode="w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = 0  # reaped above; Popen must not wait for it again
        out.seek(0)
        return seconds, usage.ru_maxrss, out.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    add_database_url_option(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    server_url, server_name = benchmark_server(args.database_url, prefix="bench_memory")
    runs: list[MemoryRun] = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as folder:
        for rows in sorted(args.rows):
            path = Path(folder) / f"debtors_{rows}.csv"
            progress(f"writing {rows} rows to {path}")
            # In a process of its own: this one stays small, since a child forked from it
            # starts out with its resident pages, which its peak (ru_maxrss) would count.
            subprocess.run(
                [sys.executable, "-m", "bench.generate", str(path), "--rows", str(rows)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            progress(f"importing {path.name} with python -m billing import")
            runs.append(import_with_the_cli(server_url, path, rows=rows))
            path.unlink()
    if args.json:
        print(json.dumps([asdict(run) | {"met": run.met} for run in runs], indent=2))
        return 0
    print(
        f"python -m billing import, one file per database; {server_version(server_url)}"
        f" ({server_name})\n"
    )
    print(f"{'rows':>9} {'file MB':>8} {'seconds':>8} {'peak RSS':>9}  status  imported")
    for run in runs:
        print(
            f"{run.rows:>9} {run.file_mb:>8.1f} {run.seconds:>8.2f} "
            f"{run.peak_rss_bytes / 2**30:>6.2f} GB  {run.status:<6}  {run.imported}"
        )
    met = all(run.met for run in runs)
    worst = max(run.peak_rss_bytes for run in runs) / 2**30
    print(
        f"\ngoal: peak RSS <= 1 GB whatever the file's size: {'MET' if met else 'MISSED'}"
        f" (highest {worst:.2f} GB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
