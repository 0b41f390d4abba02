"""How fast the Charges and Debtors pages answer with a million charges, and with which plans.

Every query a page runs is timed over repeated runs (after a warm-up) through the same
functions the pages call, and p50 and p95 are printed; the goal is p95 <= 300 ms for
each, except the export. Each query is also EXPLAINed (FORMAT JSON) and checked
against the index it is written for: PASS when the plan uses it and does not scan
the whole charges table, FAIL otherwise, with what the plan did instead.

The data: ``bench.generate.write_debtor_file`` imported by ``billing.imports.service``
(boletos included; above 1.1M rows, the largest file a fund sends, files of 1.1M from
``write_monthly_debtor_files``, imported one after the other as months arrive), then
one charge in ten marked paid, one in fifty partly paid and one in fifty canceled (with
their payments), then VACUUM ANALYZE. It lives in a
database named ``bench_dashboard``, on an embedded server kept in --data-dir or on the
server of --database-url (never in that URL's own database), so --reuse can skip the
three-minute load next time.

"Today" is fixed (--today, default 2023-10-15, inside the generated due dates), so the
derived "overdue" selects about half of the open charges, as in a live fund.

The Overview reads figures kept up to date by triggers (migration 009), which the load
fills as it goes (the import, the status changes and payments are ordinary statements),
then compacts as the worker's daily cycle does. The report says whether those figures
equal the direct computation over every charge, and times that computation too
("overview: direct computation", the query the Overview ran before, not a page query).
The Overview's goal besides 300 ms: flat as charges grow, p95 at --rows 5500000 at most
1.5 times its p95 at 1100000 (run both sizes and compare).

--candidate NAME creates an index that the schema does not have, measures with it and
drops it: the figures with and without, for deciding whether it pays for its cost on
every import.

Usage:
    python -m bench.bench_dashboard [--rows 1100000] [--database-url URL]
        [--data-dir DIR] [--reuse] [--runs 30] [--today YYYY-MM-DD]
        [--candidate amount|due_date_amount|status_due_date_amount ...] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, make_url, text

from bench.generate import write_debtor_file, write_monthly_debtor_files
from bench.support import add_database_url_option, progress
from billing.accounts.access import cli_actor
from billing.charges.browsing import (
    charge_page,
    charge_totals,
    debtor_page,
    debtor_summary,
    is_broad_search,
)
from billing.charges.export import charges_csv_chunks
from billing.core.filters import ChargeFilter, Cursor, DebtorCursor, route_search
from billing.core.settings import get_settings
from billing.imports.service import import_file
from db import charges as charges_db
from db import overview as overview_db
from db.engine import libpq_url, make_engine, start_embedded_server
from db.migrations import migrate

GOAL_MS = 300.0
BENCH_DATABASE = "bench_dashboard"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "bench_dashboard_pg"
DEFAULT_TODAY = date(2023, 10, 15)
EXPORT_ROWS = 10_000
FILE_ROWS = 1_100_000  # the largest file a fund sends (and the upload takes): one month
EXPORT_RUNS = 5
DIRECT_OVERVIEW_RUNS = 5  # seconds each on millions of charges
WARM_UP_RUNS = 3

EMPTY_PROJECT_TABLES = (
    "TRUNCATE imports, import_rejections, charges, debtors RESTART IDENTITY CASCADE"
)
# After the import every charge is 'issued'. Give the list the mix a fund sees: one in
# ten paid, one in fifty partly paid, one in fifty canceled, with their payments.
VARY_STATUSES = """
UPDATE charges SET status = CASE
    WHEN mod(id, 10) = 0 THEN 'paid'
    WHEN mod(id, 50) = 1 THEN 'partially_paid'
    ELSE 'canceled' END
WHERE mod(id, 10) = 0 OR mod(id, 50) IN (1, 2)
"""
RECORD_PAYMENTS = """
INSERT INTO payments (charge_id, paid_at, paid_amount, paid_by, source, idempotency_key)
SELECT id, due_date::timestamptz,
       CASE WHEN status = 'paid' THEN amount ELSE round(amount / 2, 2) END,
       payer_name, 'webhook', 'bench:' || id
FROM charges WHERE status IN ('paid', 'partially_paid')
"""
# Indexes the schema does not have, to measure what they would change (--candidate).
CANDIDATES = {
    "amount": "CREATE INDEX bench_charges_amount_idx ON charges (amount)",
    "due_date_amount": (
        "CREATE INDEX bench_charges_due_date_amount_idx ON charges (due_date) INCLUDE (amount)"
    ),
    "status_due_date_amount": (
        "CREATE INDEX bench_charges_status_due_date_amount_idx "
        "ON charges (status, due_date) INCLUDE (amount)"
    ),
    "debtor_id_amount": (
        "CREATE INDEX bench_charges_debtor_id_amount_idx ON charges (debtor_id) INCLUDE (amount)"
    ),
}


# --------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------


@dataclass
class Case:
    """One query as a page runs it, and what its plan should look like."""

    name: str
    run: Callable[[], int]  # runs the query; returns how many rows it gave
    statement: tuple[str, dict[str, Any]] | None  # for EXPLAIN; None: not ours
    indexes: tuple[str, ...] = ()  # the plan must use one of these
    whole_table: bool = False  # reads every charge by design: a Seq Scan is expected
    note: str = ""
    runs: int | None = None  # default --runs
    goal: bool = True  # p95 <= GOAL_MS applies
    timings: list[float] = field(default_factory=list)
    rows: int = 0
    plan: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.timings)

    @property
    def p95(self) -> float:
        ordered = sorted(self.timings)
        return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Sample:
    """Real values to search for, taken from the loaded data."""

    cpf_prefix: str
    debt_prefix: str
    email_prefix: str
    debtor_id: int
    export_due_to: date


def build_cases(engine: Engine, *, today: date, sample: Sample) -> list[Case]:
    cases: list[Case] = []

    def page(name: str, charge_filter: ChargeFilter, *indexes: Any, **kw: Any) -> ChargeFilter:
        after = kw.pop("after", None)
        cases.append(
            Case(
                name=name,
                run=lambda: len(
                    charge_page(engine, charge_filter=charge_filter, today=today, after=after).rows
                ),
                statement=charges_db.charge_rows_sql(
                    charge_filter,
                    today=today,
                    after=after,
                    limit=51,
                    broad_search=is_broad_search(engine, charge_filter),
                ),
                indexes=_flat(indexes),
                **kw,
            )
        )
        return charge_filter

    def totals(name: str, charge_filter: ChargeFilter, *indexes: Any, **kw: Any) -> None:
        cases.append(
            Case(
                name=name,
                run=lambda: charge_totals(engine, charge_filter=charge_filter, today=today).count,
                statement=charges_db.count_and_sum_sql(charge_filter, today=today),
                indexes=_flat(indexes),
                **kw,
            )
        )

    # Each condition's index, or the candidate that would replace it (--candidate).
    due = ("charges_due_date_idx", "bench_charges_due_date_amount_idx")
    # (status, due_date): dropped by migration 022; --candidate status_due_date_amount
    # measures the pages with it again.
    status = ("charges_status_due_date_idx", "bench_charges_status_due_date_amount_idx")
    by_debtor = ("charges_debtor_idx", "bench_charges_debtor_id_amount_idx")
    amount = ("charges_amount_idx", "bench_charges_amount_idx")
    month = {"due_from": date(2023, 3, 1), "due_to": date(2023, 3, 31)}
    amounts = {"amount_min": Decimal("1000"), "amount_max": Decimal("2000")}
    unfiltered = ChargeFilter()
    page("page: first, no filter", unfiltered, due)
    page("page: first, no filter, newest first", ChargeFilter(descending=True), due)
    page("page: status paid", ChargeFilter(statuses=("paid",)), status, due)
    page("page: status overdue", ChargeFilter(statuses=("overdue",)), status, due)
    page("page: status paid or canceled", ChargeFilter(statuses=("paid", "canceled")), status, due)
    page("page: due range (a month)", ChargeFilter(**month), due, status)
    page("page: amount range 1000-2000", ChargeFilter(**amounts), due, status)
    page(
        "page: overdue + due range + amounts",
        ChargeFilter(statuses=("overdue",), **month, **amounts),
        due,
        status,
    )
    first = charge_page(engine, charge_filter=unfiltered, today=today).next_cursor
    page("page: next by keyset (due date)", unfiltered, due, after=first)
    middle = Cursor(value=date(2023, 10, 1), id=0)
    page("page: deep keyset (due 2023-10-01)", unfiltered, due, after=middle)
    by_amount = ChargeFilter(sort="amount")
    page("page: sort by amount", by_amount, amount)
    page(
        "page: sort by amount, largest first",
        ChargeFilter(sort="amount", descending=True),
        amount,
    )
    after_amount = charge_page(engine, charge_filter=by_amount, today=today).next_cursor
    page(
        "page: next by keyset (amount)",
        by_amount,
        amount,
        after=after_amount,
    )

    name = "debtor_search_words_idx"  # migration 020: debtors are found in debtor_search
    name_word = ChargeFilter(text="Magalhães")
    full_name = ChargeFilter(text="maria conceicao aragao")
    # A common surname finds ~10,000 debtors: its page walks charges in due-date order.
    page("search: a name word (Magalhães)", name_word, name, due)
    page("search: a full name (maria conceicao aragao)", full_name, name)
    page(
        f"search: an e-mail prefix ({sample.email_prefix})",
        ChargeFilter(text=sample.email_prefix),
        "debtor_search_email_idx",
    )
    page(
        f"search: a CPF prefix ({sample.cpf_prefix})",
        ChargeFilter(text=sample.cpf_prefix),
        "debtors_government_id_key",
    )
    page(
        f"search: a debtId prefix ({sample.debt_prefix})",
        ChargeFilter(text=sample.debt_prefix, search_in="debt"),
        "charge_keys_pkey",  # every debtId, with its charge (migrations 010, 021)
    )

    # Status and due dates alone: answered from the Overview's kept figures (migration
    # 009), so the plan must read no charge at all.
    kept = "the Overview's kept figures, not charges"
    totals("count+sum: no filter", unfiltered, note=kept)
    totals("count+sum: status paid", ChargeFilter(statuses=("paid",)), note=kept)
    totals("count+sum: status overdue", ChargeFilter(statuses=("overdue",)), note=kept)
    totals("count+sum: due range (a month)", ChargeFilter(**month), note=kept)
    totals(
        "count+sum: amount range 1000-2000",
        ChargeFilter(**amounts),
        amount,
    )
    totals("count+sum: a name word (Magalhães)", name_word, name)
    totals("count+sum: a full name", full_name, name)

    export_filter = ChargeFilter(due_from=date(2023, 3, 1), due_to=sample.export_due_to)
    cases.append(
        Case(
            name="export: CSV of about 10,000 charges",
            run=lambda: _export(engine, export_filter, today=today),
            statement=charges_db.export_sql(export_filter, today=today),
            indexes=_flat((due, status)),
            runs=EXPORT_RUNS,
            goal=False,
        )
    )

    debtor_search = route_search("maria conceicao aragao")
    cases.append(
        Case(
            name="debtors: search a full name",
            run=lambda: len(debtor_page(engine, text="maria conceicao aragao").rows),
            statement=charges_db.debtor_rows_sql(search=debtor_search, after=None, limit=51),
            indexes=(name,),
        )
    )
    cases.append(
        Case(
            name="debtors: first page, no search",
            run=lambda: len(debtor_page(engine).rows),
            statement=charges_db.debtor_rows_sql(search=None, after=None, limit=51),
            indexes=("debtor_search_name_idx",),  # pages read in name order (020)
        )
    )
    after_debtor = DebtorCursor(name="M", id=0)
    cases.append(
        Case(
            name="debtors: next page, no search",
            run=lambda: len(debtor_page(engine, after=after_debtor).rows),
            statement=charges_db.debtor_rows_sql(search=None, after=after_debtor, limit=51),
            indexes=("debtor_search_name_idx",),  # pages read in name order (020)
        )
    )
    cases.append(
        Case(
            name="debtors: one debtor's totals",
            run=lambda: debtor_summary(engine, sample.debtor_id, today=today)["charges"],
            statement=(
                charges_db.DEBTOR_TOTALS_SQL,
                {
                    "debtor_id": sample.debtor_id,
                    "today": today,
                    "open": list(charges_db.OPEN_STATUSES),
                    "unpaid": list(charges_db.UNPAID_STATUSES),
                },
            ),
            indexes=by_debtor,
        )
    )
    return cases


def _flat(indexes: tuple[Any, ...]) -> tuple[str, ...]:
    """Index names given one by one or in tuples (an index and its candidates)."""
    return tuple(name for item in indexes for name in ((item,) if isinstance(item, str) else item))


def _export(engine: Engine, charge_filter: ChargeFilter, *, today: date) -> int:
    lines = 0
    for chunk in charges_csv_chunks(
        engine, actor=cli_actor(), charge_filter=charge_filter, today=today
    ):
        lines += chunk.count(b"\n")
    return lines - 1  # the header


def overview_cases(engine: Engine, *, today: date) -> tuple[list[Case], str]:
    """billing.charges.overview's functions, when another engineer's module exists."""
    try:
        overview = importlib.import_module("billing.charges.overview")
    except ModuleNotFoundError:
        return [], "billing/charges/overview.py does not exist yet: overview aggregates skipped."
    cases, skipped = [], []
    for name, function in inspect.getmembers(overview, inspect.isfunction):
        if name.startswith("_") or function.__module__ != overview.__name__:
            continue
        parameters = inspect.signature(function).parameters
        if "engine" not in parameters:  # works on rows already read: no query to time
            continue
        known = {"engine": engine, "today": today, "timezone": get_settings().timezone}
        arguments = {p: known[p] for p in parameters if p in known}
        if any(
            p.default is inspect.Parameter.empty and p.name not in known
            for p in parameters.values()
        ):
            skipped.append(name)
            continue
        cases.append(
            Case(
                name=f"overview: {name}",
                run=lambda function=function, arguments=arguments: _size(function(**arguments)),
                statement=None,
            )
        )
    cases.append(direct_overview_case(engine, today=today))
    note = f"overview: skipped {', '.join(skipped)} (arguments unknown)." if skipped else ""
    return cases, note


def direct_overview_case(engine: Engine, *, today: date) -> Case:
    """The Overview's charge totals summed from every charge: what the page ran before
    migration 009, now the reference its kept figures are checked against."""

    def run() -> int:
        with engine.connect() as conn:
            return len(overview_db.direct_charge_totals(conn, today=today))

    return Case(
        name="overview: direct computation (reference)",
        run=run,
        statement=None,
        runs=DIRECT_OVERVIEW_RUNS,
        goal=False,
    )


def overview_figures_facts(engine: Engine) -> str:
    """How many rows the kept figures hold, and whether they equal a direct computation."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM charge_totals")).scalar_one()
        drift = overview_db.charge_totals_drift(conn)
    agreement = "equal" if not drift else f"DIFFERENT on {len(drift)} keys"
    return (
        f"Overview figures: {rows} rows kept (after compaction), {agreement} to the direct "
        "computation over every charge"
    )


def _size(value: object) -> int:
    try:
        return len(value)  # type: ignore[arg-type]
    except TypeError:
        return 1


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


# Partitions (tables and their indexes) by name: their top parent's name and estimated rows.
_PARTITION_PARENTS = """
WITH RECURSIVE up AS (
    SELECT i.inhrelid AS child, i.inhparent AS parent FROM pg_inherits AS i
    UNION ALL
    SELECT up.child, i.inhparent FROM up JOIN pg_inherits AS i ON i.inhrelid = up.parent
)
SELECT c.relname, p.relname, greatest(c.reltuples, 0)
FROM up
JOIN pg_class AS c ON c.oid = up.child
JOIN pg_class AS p ON p.oid = up.parent
WHERE NOT EXISTS (SELECT 1 FROM pg_inherits AS i WHERE i.inhrelid = up.parent)
"""
SMALL_PARTITION_ROWS = 10_000


def _partition_parents(engine: Engine) -> dict[str, tuple[str, float]]:
    with engine.connect() as conn:
        rows = conn.execute(text(_PARTITION_PARENTS)).all()
    return {name: (parent, float(tuples)) for name, parent, tuples in rows}


# Tables a page must never read whole (a Seq Scan of their large partitions). `debtors`
# may be: joining a few thousand charges to their debtors, a hash join over every debtor
# can cost what as many probes of its key cost (the export at 1.1M charges: 155 ms).
_NEVER_READ_WHOLE = ("charges", "debtor_search")


def _read_whole(seq_scans: list[str]) -> bool:
    return any(table in seq_scans for table in _NEVER_READ_WHOLE)


def check_plan(engine: Engine, case: Case) -> str:
    """PASS or FAIL, and what the plan reads."""
    if case.statement is None:
        return "n/a (not our SQL)"
    statement, params = case.statement
    with engine.connect() as conn:
        plan = conn.execute(text("EXPLAIN (FORMAT JSON) " + statement), params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    # A partition's index counts as its parent's; a scan of a small partition (the open
    # one, an old one emptied) reads nothing worth naming.
    parents = _partition_parents(engine)
    used = sorted(
        {parents.get(n["Index Name"], (n["Index Name"], 0))[0] for n in nodes if "Index Name" in n}
    )
    seq_scans = sorted(
        {
            parents.get(n["Relation Name"], (n["Relation Name"], math.inf))[0]
            for n in nodes
            if n["Node Type"] == "Seq Scan"
            and parents.get(n["Relation Name"], ("", math.inf))[1] >= SMALL_PARTITION_ROWS
        }
    )
    reads = ", ".join(used) or "no index"
    if seq_scans:
        reads += "; Seq Scan on " + ", ".join(seq_scans)
    if case.whole_table:  # nothing narrows it: only an index could spare the scan
        if any(i in used for i in case.indexes) and not _read_whole(seq_scans):
            return f"PASS {reads}"
        return f"n/a  {reads} ({case.note or 'reads every charge: no index serves it'})"
    ok = not _read_whole(seq_scans) and (not case.indexes or any(i in used for i in case.indexes))
    note = f" ({case.note})" if case.note and not ok else ""
    return f"{'PASS' if ok else 'FAIL'} {reads}{note}"


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def bench_database_url(server_url: str) -> str:
    """The URL of the benchmark's own database on that server, created when missing."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    return make_url(libpq_url(server_url)).set(database=BENCH_DATABASE).render_as_string(False)


def holds_bench_data(engine: Engine, *, rows: int) -> bool:
    with engine.connect() as conn:
        charges, payments = conn.execute(
            text("SELECT (SELECT count(*) FROM charges), (SELECT count(*) FROM payments)")
        ).one()
    return charges == rows and payments > 0


def load(engine: Engine, *, rows: int) -> None:
    """Empty the project's tables, import generated files of `rows` charges in all (one
    file up to FILE_ROWS, then files of FILE_ROWS as months arrive), vary them."""
    with engine.begin() as conn:
        conn.exec_driver_sql(EMPTY_PROJECT_TABLES)
    files = math.ceil(rows / FILE_ROWS)
    with tempfile.TemporaryDirectory(prefix="bench_dashboard_") as work:
        progress(f"generating {rows} rows in {files} file(s)")
        if files == 1:
            paths = [write_debtor_file(Path(work) / "debtors.csv", rows=rows)]
        else:
            paths = write_monthly_debtor_files(Path(work), files=files, rows=rows // files).paths
        for number, path in enumerate(paths, start=1):
            progress(f"importing file {number} of {files} (and issuing its boletos)")
            started = time.perf_counter()
            result = import_file(
                actor=cli_actor(),
                engine=engine,
                data=path.read_bytes(),
                file_name=f"bench_debtors_{number}.csv",
                lenient_documents=False,
            )
            if result.status != "done" or result.imported != rows // files:
                raise RuntimeError(f"the import did not take every row: {result}")
            progress(f"imported in {time.perf_counter() - started:.1f} s")
    progress("varying statuses")
    with engine.begin() as conn:
        conn.exec_driver_sql(VARY_STATUSES)
        conn.exec_driver_sql(RECORD_PAYMENTS)
    progress("compacting the Overview's figures, as the worker's daily cycle does")
    with engine.begin() as conn:
        overview_db.compact_charge_totals(conn)
    vacuum(engine)


def vacuum(engine: Engine) -> None:
    progress("VACUUM ANALYZE")
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) charges, debtors, payments, charge_totals")


def take_sample(engine: Engine) -> Sample:
    with engine.connect() as conn:
        government_id, email, debtor_id = conn.execute(
            text("SELECT government_id, email, id FROM debtors ORDER BY id OFFSET 1000 LIMIT 1")
        ).one()
        debt_id = conn.execute(
            text("SELECT debt_id FROM charges ORDER BY id OFFSET 1000 LIMIT 1")
        ).scalar_one()
        # The due date that makes the export at least EXPORT_ROWS rows from 2023-03-01.
        export_due_to = conn.execute(
            text(
                "SELECT due_date FROM charges WHERE due_date >= '2023-03-01' "
                "ORDER BY due_date OFFSET :rows LIMIT 1"
            ),
            {"rows": EXPORT_ROWS},
        ).scalar_one()
    return Sample(
        cpf_prefix=government_id[:6],
        debt_prefix=debt_id[:5],
        email_prefix=email.split("@")[0][:10],  # "gabriela.s": a dot makes it an e-mail
        debtor_id=debtor_id,
        export_due_to=export_due_to,
    )


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def measure(case: Case, *, runs: int) -> None:
    for _ in range(WARM_UP_RUNS):
        case.rows = case.run()
    for _ in range(case.runs or runs):
        started = time.perf_counter()
        case.rows = case.run()
        case.timings.append((time.perf_counter() - started) * 1000)


def server_facts(engine: Engine) -> str:
    with engine.connect() as conn:
        version, buffers, work_mem, workers = conn.execute(
            text(
                "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                "current_setting('work_mem'), "
                "current_setting('max_parallel_workers_per_gather')"
            )
        ).one()
        size = conn.execute(
            text(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) "
                "FROM pg_partition_tree('charges')"
            )
        ).scalar_one()
    return (
        f"PostgreSQL {version.split()[0]}, shared_buffers {buffers}, work_mem {work_mem}, "
        f"parallel workers per gather {workers}; charges with its indexes: {size}"
    )


def format_report(cases: list[Case], *, header: list[str]) -> str:
    width = max(len(c.name) for c in cases)
    lines = [*header, ""]
    lines.append(f"{'query':<{width}}  {'rows':>6}  {'p50 ms':>8}  {'p95 ms':>8}  goal    plan")
    for case in cases:
        goal = ("met" if case.p95 <= GOAL_MS else "MISSED") if case.goal else "-"
        lines.append(
            f"{case.name:<{width}}  {case.rows:>6}  {case.p50:>8.1f}  {case.p95:>8.1f}  "
            f"{goal:<6}  {case.plan}"
        )
    missed = [c.name for c in cases if c.goal and c.p95 > GOAL_MS]
    failed = [c.name for c in cases if c.plan.startswith("FAIL")]
    lines.append("")
    lines.append(
        f"p95 goal {GOAL_MS:.0f} ms: {len(missed)} missed"
        + (f" ({'; '.join(missed)})" if missed else "")
    )
    lines.append(f"plans: {len(failed)} FAIL" + (f" ({'; '.join(failed)})" if failed else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.database_url:
        server_url = args.database_url
        where = f"{make_url(server_url).host or 'local socket'}"
    else:
        progress(f"embedded PostgreSQL in {args.data_dir}")
        server_url = start_embedded_server(args.data_dir, cleanup_mode="stop")
        where = f"embedded, {args.data_dir}"
    engine = make_engine(bench_database_url(server_url))
    try:
        migrate(engine)
        if args.reuse and holds_bench_data(engine, rows=args.rows):
            progress(f"reusing the {args.rows} charges already loaded")
        else:
            load(engine, rows=args.rows)
        candidates = []
        for name in args.candidate:
            progress(f"creating candidate index {name}")
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.exec_driver_sql(CANDIDATES[name])
            candidates.append(f"{name} (built in {time.perf_counter() - started:.1f} s)")
        if candidates:
            vacuum(engine)
        try:
            cases, overview_note = _run(engine, args)
        finally:
            with engine.begin() as conn:
                for name in args.candidate:
                    index = CANDIDATES[name].split()[2]
                    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        header = [
            f"{args.rows} charges; server {where}",
            server_facts(engine),
            f"today = {args.today.isoformat()}; {args.runs} runs per query after "
            f"{WARM_UP_RUNS} warm-up runs (the export: {EXPORT_RUNS})",
            "candidate indexes: " + (", ".join(candidates) or "none (the schema as it is)"),
            overview_figures_facts(engine),
        ]
        if overview_note:
            header.append(overview_note)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "query": c.name,
                            "rows": c.rows,
                            "p50_ms": round(c.p50, 1),
                            "p95_ms": round(c.p95, 1),
                            "goal_met": (c.p95 <= GOAL_MS) if c.goal else None,
                            "plan": c.plan,
                        }
                        for c in cases
                    ],
                    indent=2,
                )
            )
        else:
            print(format_report(cases, header=header))
    finally:
        engine.dispose()
    return 0


def _run(engine: Engine, args: argparse.Namespace) -> tuple[list[Case], str]:
    sample = take_sample(engine)
    overview, overview_note = overview_cases(engine, today=args.today)
    cases = overview + build_cases(engine, today=args.today, sample=sample)
    for number, case in enumerate(cases, start=1):
        progress(f"[{number}/{len(cases)}] {case.name}")
        case.plan = check_plan(engine, case)
        measure(case, runs=args.runs)
    return cases, overview_note


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_dashboard",
        description="Time the Charges and Debtors pages' queries on a million charges.",
    )
    parser.add_argument("--rows", type=int, default=1_100_000, help="charges (default 1100000)")
    add_database_url_option(
        parser,
        where_data_goes=f"the data goes to its database {BENCH_DATABASE!r}, created when missing",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where the embedded server keeps its files (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="skip loading when the data is already there"
    )
    parser.add_argument("--runs", type=int, default=30, help="timed runs per query (default 30)")
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        default=DEFAULT_TODAY,
        help=f"the date overdue is computed from (default {DEFAULT_TODAY})",
    )
    parser.add_argument(
        "--candidate",
        action="append",
        choices=sorted(CANDIDATES),
        default=[],
        help="create this index for the run, then drop it (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be at least 1")
    if args.rows > FILE_ROWS and args.rows % math.ceil(args.rows / FILE_ROWS):
        parser.error(f"above {FILE_ROWS}, --rows must divide into files of equal size")
    return args


if __name__ == "__main__":
    sys.exit(main())
