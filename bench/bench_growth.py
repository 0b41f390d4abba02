"""What an operator meets month after month: issue 9, "the second month".

Five files of 1.1M rows (--files, --rows) are imported one after the other into ONE
database, as a fund receives them: every debtId new, about a third of each later file's
debtors already owing from an earlier file (bench.generate.write_monthly_debtor_files).
Then the last file imported is imported again, with nothing new in it.

For each import: its seconds, its ratio to the first, the rows it took and the peak
resident memory of its process. The goals: every import at most 1.3x the first and
under 60 s, the re-import at most 0.6x the first.

While each import runs, a probe plays the dashboard: the Overview's figures
(billing.charges.overview.charge_totals and activity), the first page of Charges (an empty
filter) and a Debtors search by name, each on a thread and a connection of its own,
connected as the application's role, each run again half a second after its previous run
ended (so a slow query is not run back to back). Each run's wait is recorded; a run
counts for an import when it overlaps the import's own time. The goal: no wait over 2 s.
A probe query that fails (a deadlock, say) counts as missed and its error is printed.

How it is measured: each import runs in a fresh child process (its peak memory is the
import's), as the application's role, timed around billing.imports.service.import_file from
the file's bytes in memory, after a CHECKPOINT, as bench_import does. An import that
fails is reported with its error and the next file is imported all the same. Between
imports, what a month does to an idle server: VACUUM (ANALYZE) of charges, debtors,
debtor_search and charge_keys (every debtId charged) as their owner (autovacuum's work: a
table that took a fifth of its size in inserts is vacuumed within its minute), then the
CHECKPOINT; neither is timed. Everything happens in a database created for the run and
dropped afterwards.

Usage:
    python -m bench.bench_growth [--rows 1100000] [--files 5] [--database-url URL] [--json]

Without --database-url (or DATABASE_URL) an embedded PostgreSQL is started in a
temporary folder and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from bench.generate import MonthlyFiles, write_monthly_debtor_files
from bench.support import (
    add_database_url_option,
    application_role,
    benchmark_server,
    checkpoint,
    peak_memory_bytes,
    progress,
    scratch_database,
    server_version,
)
from billing.accounts.access import cli_actor
from billing.charges import overview
from billing.charges.browsing import charge_page, debtor_page
from billing.core.filters import ChargeFilter
from billing.core.settings import get_settings
from billing.imports.service import import_file
from db.engine import libpq_url, make_engine
from db.migrations import migrate

GROWTH_GOAL = 1.3  # every import at most this many times the first
SECONDS_GOAL = 60.0  # every import under a minute
REIMPORT_GOAL = 0.6  # the same file again, nothing new: at most this share of the first
PROBE_GOAL_SECONDS = 2.0  # the longest a dashboard query may wait during an import
PROBE_PAUSE_SECONDS = 0.5
PROBE_TODAY = date(2023, 10, 15)  # inside the generated due dates, as in bench_dashboard
PROBE_NAME = "maria conceicao aragao"
MONTH_PASSES = "VACUUM (ANALYZE) charges, debtors, debtor_search, charge_keys"
COUNTS = "SELECT (SELECT count(*) FROM charges), (SELECT count(*) FROM debtors)"


# --------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------


def _overview_totals(engine: Engine) -> object:
    return overview.charge_totals(engine, today=PROBE_TODAY)


def _overview_activity(engine: Engine) -> object:
    return overview.activity(engine, today=PROBE_TODAY, timezone=get_settings().timezone)


def _charges_first_page(engine: Engine) -> object:
    return charge_page(engine, charge_filter=ChargeFilter(), today=PROBE_TODAY)


def _debtors_name_search(engine: Engine) -> object:
    return debtor_page(engine, text=PROBE_NAME)


PROBE_QUERIES: dict[str, Callable[[Engine], object]] = {
    "overview: charge_totals": _overview_totals,
    "overview: activity": _overview_activity,
    "charges: first page": _charges_first_page,
    "debtors: name search": _debtors_name_search,
}


@dataclass(frozen=True)
class ProbeRun:
    """One run of one dashboard query: when it began (epoch seconds), how long it took."""

    query: str
    began: float
    seconds: float
    error: str | None = None

    @property
    def ended(self) -> float:
        return self.began + self.seconds


class Probe:
    """The dashboard's queries, each on a thread and a connection of its own, until the
    `with` block ends; every run recorded, a failed run with its error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runs: list[ProbeRun] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(name, query), name=f"probe {name}")
            for name, query in PROBE_QUERIES.items()
        ]

    def __enter__(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()  # each ends its run in flight first: that wait counts too

    def _loop(self, name: str, query: Callable[[Engine], object]) -> None:
        engine = make_engine(self.url)
        try:
            while not self._stop.is_set():
                began, clock = time.time(), time.perf_counter()
                error = None
                try:
                    query(engine)
                except Exception as exc:  # a failed page is a finding: recorded, reported
                    error = _describe(exc)
                self.runs.append(ProbeRun(name, began, time.perf_counter() - clock, error))
                self._stop.wait(PROBE_PAUSE_SECONDS)
        finally:
            engine.dispose()


@dataclass(frozen=True)
class ProbeSummary:
    """The probe's runs that overlapped one import."""

    runs: list[ProbeRun]

    @classmethod
    def during(cls, runs: list[ProbeRun], *, began: float, ended: float) -> ProbeSummary:
        return cls([run for run in runs if run.began <= ended and run.ended >= began])

    @property
    def waits(self) -> list[float]:
        return [run.seconds for run in self.runs]

    @property
    def worst(self) -> ProbeRun | None:
        return max(self.runs, key=lambda run: run.seconds, default=None)

    @property
    def p95(self) -> float | None:
        return _p95(self.waits)

    @property
    def errors(self) -> list[ProbeRun]:
        return [run for run in self.runs if run.error]

    def as_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "runs": len(self.runs),
            "p95_seconds": _rounded(self.p95),
            "worst_seconds": _rounded(worst.seconds if worst else None),
            "worst_query": worst.query if worst else None,
            "busy_seconds": round(sum(self.waits), 3),
            "errors": [
                {"query": run.query, "after_seconds": round(run.seconds, 3), "error": run.error}
                for run in self.errors
            ],
            "queries": {
                name: {
                    "runs": len(waits),
                    "p95_seconds": _rounded(_p95(waits)),
                    "worst_seconds": _rounded(max(waits, default=None)),
                }
                for name in PROBE_QUERIES
                for waits in [[run.seconds for run in self.runs if run.query == name]]
            },
        }


def _p95(values: list[float]) -> float | None:
    """The 95th percentile, nearest rank: a wait that 95% of the runs did not exceed."""
    if not values:
        return None
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


# --------------------------------------------------------------------------
# One import
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRun:
    """One import, as its own process saw it."""

    seconds: float  # wall time around import_file (until it raised, if it did)
    began: float  # epoch seconds, to match the probe's runs
    ended: float
    result: dict[str, Any] | None  # ImportResult.as_dict(), when import_file returned
    error: str | None  # what import_file raised, or why the process ended
    peak_memory_bytes: int | None  # the process's peak RSS, import included


@dataclass(frozen=True)
class MeasuredImport:
    label: str
    path: Path
    run: ImportRun
    probe: ProbeSummary
    charges_after: int
    debtors_after: int
    load_average: tuple[float, float]  # the machine's, 1 minute, as it began and ended

    @property
    def succeeded(self) -> bool:
        return self.run.error is None and (self.run.result or {}).get("status") == "done"

    def figure(self, name: str) -> Any:
        return (self.run.result or {}).get(name)

    def as_dict(self, *, first_seconds: float) -> dict[str, Any]:
        return {
            "label": self.label,
            "file": self.path.name,
            "seconds": round(self.run.seconds, 3),
            "ratio": round(self.run.seconds / first_seconds, 3) if first_seconds else None,
            "status": self.figure("status") or "failed",
            "rows": self.figure("rows"),
            "imported": self.figure("imported"),
            "duplicates": self.figure("duplicates"),
            "rejected": self.figure("rejected"),
            "error": self.run.error or self.figure("error"),
            "peak_memory_bytes": self.run.peak_memory_bytes,
            "charges_after": self.charges_after,
            "debtors_after": self.debtors_after,
            "load_average_before": round(self.load_average[0], 2),
            "load_average_after": round(self.load_average[1], 2),
            "probe": self.probe.as_dict(),
        }


def measured_import(owner_url: str, app_url: str, path: Path, *, label: str) -> MeasuredImport:
    """Let a month pass, then import `path` in a child process while the probe runs."""
    progress(f"{label}: {MONTH_PASSES}, then importing {path.name}")
    with psycopg.connect(libpq_url(owner_url), autocommit=True) as conn:
        conn.execute(MONTH_PASSES)
    load_before = os.getloadavg()[0]
    with Probe(app_url) as probe:
        run = import_in_child(app_url, owner_url, path)
    load_after = os.getloadavg()[0]
    with psycopg.connect(libpq_url(owner_url)) as conn:
        counts = conn.execute(COUNTS).fetchone()
    assert counts is not None
    measured = MeasuredImport(
        label=label,
        path=path,
        run=run,
        probe=ProbeSummary.during(probe.runs, began=run.began, ended=run.ended),
        charges_after=counts[0],
        debtors_after=counts[1],
        load_average=(load_before, load_after),
    )
    worst = measured.probe.worst
    progress(
        f"{label}: {run.seconds:.2f} s, "
        + (f"imported {measured.figure('imported')}" if measured.succeeded else "FAILED")
        + (f"; probe worst {worst.seconds:.2f} s ({worst.query})" if worst else "")
    )
    return measured


def import_in_child(app_url: str, owner_url: str, path: Path) -> ImportRun:
    """Run the import in a fresh process; a process that dies is reported, not raised."""
    spawn = multiprocessing.get_context("spawn")
    submitted = time.time()
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            return pool.submit(_import_in_child, app_url, owner_url, str(path)).result()
    except Exception as exc:  # the child could not run or died (BrokenProcessPool): reported
        now = time.time()
        return ImportRun(
            seconds=now - submitted,
            began=submitted,
            ended=now,
            result=None,
            error=f"the import's process failed: {_describe(exc)}",
            peak_memory_bytes=None,
        )


def _import_in_child(app_url: str, owner_url: str, path: str) -> ImportRun:
    """In its own process, as the application's role; the CHECKPOINT is the owner's."""
    data = Path(path).read_bytes()  # not timed
    engine = make_engine(app_url)
    try:
        with engine.connect():  # the first connection and its type look-ups, not timed
            pass
        checkpoint(owner_url)
        result, error = None, None
        began, clock = time.time(), time.perf_counter()
        try:
            result = import_file(
                actor=cli_actor(),
                engine=engine,
                data=data,
                file_name=Path(path).name,
                lenient_documents=False,
            ).as_dict()
        except Exception as exc:  # a failed import is what this benchmark reports
            error = _describe(exc)
        seconds = time.perf_counter() - clock
    finally:
        engine.dispose()
    return ImportRun(
        seconds=seconds,
        began=began,
        ended=began + seconds,
        result=result,
        error=error,
        peak_memory_bytes=peak_memory_bytes(),
    )


def _describe(exc: BaseException) -> str:
    """The exception's type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool | None  # None: nothing was measured to judge it by
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "MET", False: "MISSED", None: "NOT MEASURED"}[self.met]


@dataclass(frozen=True)
class Report:
    rows: int
    files: MonthlyFiles
    generate_seconds: float
    server: str
    imports: list[MeasuredImport]
    reimport: MeasuredImport | None
    charges_at_end: int
    debtors_at_end: int
    total_seconds: float

    @property
    def first_seconds(self) -> float:
        return self.imports[0].run.seconds

    def ratio(self, measured: MeasuredImport) -> float:
        return measured.run.seconds / self.first_seconds if self.first_seconds else math.inf

    @property
    def all_imports(self) -> list[MeasuredImport]:
        return self.imports + ([self.reimport] if self.reimport else [])

    @property
    def charges_expected(self) -> int:
        return self.rows * len(self.files.paths)

    def goals(self) -> list[Goal]:
        failed = [m.label for m in self.all_imports if not m.succeeded]
        failed_note = f"; failed: {', '.join(failed)}" if failed else ""
        later = self.imports[1:]
        slowest = max(later, key=self.ratio, default=None)
        growth = Goal(
            f"every import <= {GROWTH_GOAL:g}x the first",
            None if slowest is None else not failed and self.ratio(slowest) <= GROWTH_GOAL,
            "only one file"
            if slowest is None
            else f"highest {slowest.label} {self.ratio(slowest):.2f}x{failed_note}",
        )
        longest = max(self.all_imports, key=lambda m: m.run.seconds)
        seconds = Goal(
            f"every import under {SECONDS_GOAL:g} s",
            not failed and longest.run.seconds < SECONDS_GOAL,
            f"longest {longest.label} {longest.run.seconds:.1f} s{failed_note}",
        )
        again = self.reimport
        if again is None:
            reimport = Goal(
                f"re-import <= {REIMPORT_GOAL:g}x the first", None, "no file was imported"
            )
        else:
            nothing_new = again.succeeded and again.figure("imported") == 0
            reimport = Goal(
                f"re-import <= {REIMPORT_GOAL:g}x the first",
                nothing_new and self.ratio(again) <= REIMPORT_GOAL,
                f"{again.label} {self.ratio(again):.2f}x"
                + ("" if again.succeeded else ", FAILED")
                + ("" if not again.succeeded or nothing_new else ", but it imported rows"),
            )
        return [growth, seconds, reimport, self._probe_goal()]

    def _probe_goal(self) -> Goal:
        text = f"probe: every dashboard query answered within {PROBE_GOAL_SECONDS:g} s"
        runs = [run for m in self.all_imports for run in m.probe.runs]
        if not runs:
            return Goal(text, None, "no probe run overlapped an import")
        worst = max(runs, key=lambda run: run.seconds)
        during = next(m.label for m in self.all_imports if worst in m.probe.runs)
        errors = sum(len(m.probe.errors) for m in self.all_imports)
        unprobed = [m.label for m in self.all_imports if not m.probe.runs]
        detail = f"worst {worst.seconds:.2f} s ({worst.query}, during {during})"
        if errors:
            detail += f"; runs that failed: {errors}"
        if unprobed:
            detail += f"; no run during {', '.join(unprobed)}"
        return Goal(text, worst.seconds <= PROBE_GOAL_SECONDS and not errors, detail)

    def as_dict(self) -> dict[str, Any]:
        first = self.first_seconds
        return {
            "rows_per_file": self.rows,
            "files": len(self.files.paths),
            "debtors_per_file": self.files.debtors_per_file,
            "known_debtors_per_file": self.files.known_per_file,
            "distinct_debtors": self.files.distinct_debtors,
            "server": self.server,
            "generate_seconds": round(self.generate_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "imports": [m.as_dict(first_seconds=first) for m in self.imports],
            "reimport": self.reimport.as_dict(first_seconds=first) if self.reimport else None,
            "charges_expected": self.charges_expected,
            "charges_imported": sum(m.figure("imported") or 0 for m in self.all_imports),
            "charges_at_end": self.charges_at_end,
            "debtors_at_end": self.debtors_at_end,
            "goals": [
                {"goal": goal.text, "met": goal.met, "detail": goal.detail} for goal in self.goals()
            ],
            "probe_queries": list(PROBE_QUERIES),
            "probe_pause_seconds": PROBE_PAUSE_SECONDS,
        }


def format_report(report: Report) -> str:
    """A short table, a line per failure, the counts, then one line per goal."""
    files = report.files
    lines = [
        f"{len(files.paths)} files of {report.rows} rows, {files.debtors_per_file} debtors each "
        f"({files.known_per_file} of them from earlier files), into one database; "
        f"server {report.server}",
        "",
        f"{'import':<16}{'seconds':>8}{'ratio':>7}  {'status':<7}{'imported':>9}"
        f"{'dupl.':>9}{'rej.':>6}{'charges':>10}{'peak RSS':>10}   "
        f"{'probe':>5}{'p95 s':>7}{'worst s':>8}{'load':>6}  worst query",
    ]
    for measured in report.all_imports:
        probe = measured.probe
        worst = probe.worst
        memory = measured.run.peak_memory_bytes
        lines.append(
            f"{measured.label:<16}{measured.run.seconds:>8.2f}{report.ratio(measured):>7.2f}  "
            f"{measured.figure('status') or 'failed':<7}"
            f"{_count(measured.figure('imported')):>9}{_count(measured.figure('duplicates')):>9}"
            f"{_count(measured.figure('rejected')):>6}{measured.charges_after:>10}"
            f"{f'{memory / 1e9:.2f} GB' if memory else '-':>10}   "
            f"{len(probe.runs):>5}{_seconds(probe.p95):>7}"
            f"{_seconds(worst.seconds if worst else None):>8}"
            f"{measured.load_average[1]:>6.1f}  "
            f"{worst.query if worst else '-'}"
        )
    lines.append("")
    for measured in report.all_imports:
        error = measured.run.error or measured.figure("error")
        if not measured.succeeded:
            lines.append(f"{measured.label} FAILED after {measured.run.seconds:.2f} s: {error}")
        if measured.probe.errors:
            first = measured.probe.errors[0]
            lines.append(
                f"probe during {measured.label}: {len(measured.probe.errors)} of "
                f"{len(measured.probe.runs)} runs failed; first: {first.query} after "
                f"{first.seconds:.2f} s: {first.error}"
            )
    imported = sum(m.figure("imported") or 0 for m in report.all_imports)
    lines += [
        f"charges: {len(files.paths)} x {report.rows} = {report.charges_expected} expected, "
        f"{imported} imported, {report.charges_at_end} in the database; debtors: "
        f"{files.distinct_debtors} distinct in the files, {report.debtors_at_end} in the database",
        f"probe: {', '.join(PROBE_QUERIES)}; each again {PROBE_PAUSE_SECONDS:g} s after its "
        "previous run, as the application's role; runs overlapping each import counted",
        f"files generated in {report.generate_seconds:.1f} s; before each import VACUUM "
        "(ANALYZE) and CHECKPOINT (the month between files, not timed); "
        f"the benchmark ran in {report.total_seconds / 60:.1f} min; load: the machine's "
        f"1-minute load average as the import ended ({os.cpu_count()} cores; the import, "
        "its server process and the probe are part of it)",
    ]
    lines += [f"goal: {g.text}: {g.verdict} ({g.detail})" for g in report.goals()]
    return "\n".join(lines)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_growth_") as work:
        progress(f"generating {args.files} files of {args.rows} rows")
        clock = time.perf_counter()
        files = write_monthly_debtor_files(Path(work), files=args.files, rows=args.rows)
        generate_seconds = time.perf_counter() - clock
        progress(f"files generated in {generate_seconds:.1f} s")

        server_url, where = benchmark_server(args.database_url, prefix="bench_growth")
        with (
            scratch_database(server_url, prefix="bench_growth") as url,
            application_role(url, prefix="bench_growth") as (app_role, app_url),
        ):
            engine = make_engine(url)
            migrate(engine, app_role=app_role)
            engine.dispose()
            server = f"{server_version(url)} ({where})"
            imports = [
                measured_import(url, app_url, path, label=f"month {number}")
                for number, path in enumerate(files.paths, start=1)
            ]
            done = [m for m in imports if m.succeeded]
            reimport = None
            if done:
                again = done[-1]
                reimport = measured_import(url, app_url, again.path, label=f"{again.label} again")
            last = reimport or imports[-1]
            charges_at_end, debtors_at_end = last.charges_after, last.debtors_after
    report = Report(
        rows=args.rows,
        files=files,
        generate_seconds=generate_seconds,
        server=server,
        imports=imports,
        reimport=reimport,
        charges_at_end=charges_at_end,
        debtors_at_end=debtors_at_end,
        total_seconds=time.perf_counter() - started,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_growth",
        description="Import monthly debtor files into one database while the dashboard "
        "queries it: each import's time, memory and the dashboard's waits.",
    )
    parser.add_argument(
        "--rows", type=int, default=1_100_000, help="charges per file (default 1100000)"
    )
    parser.add_argument("--files", type=int, default=5, help="files, one a month (default 5)")
    add_database_url_option(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.files < 1:
        parser.error("--rows and --files must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main())
