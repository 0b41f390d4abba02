"""Command line for batch use and cron: `python -m billing import FILE`, `... migrate`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from billing.errors import OperatorError

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m billing", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    importing = commands.add_parser("import", help="import a debtor CSV file")
    importing.add_argument("file", type=Path)
    importing.add_argument(
        "--lenient-documents",
        action="store_true",
        help="accept any non-empty governmentId instead of requiring a valid CPF/CNPJ",
    )
    importing.add_argument("--json", action="store_true", help="print one JSON object")

    commands.add_parser("migrate", help="apply pending database migrations")

    commands.add_parser("worker", help="run the notice worker: daily cycle and e-mail sending")
    dispatching = commands.add_parser(
        "dispatch", help="issue boletos, queue the notices due today and send them, now"
    )
    dispatching.add_argument(
        "--once", action="store_true", required=True, help="run one cycle in this process"
    )
    dispatching.add_argument("--json", action="store_true", help="print one JSON object")

    serving = commands.add_parser("api", help="serve the payments API on API_PORT")
    serving.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serving.add_argument("--port", type=int, help="port to listen on (default: API_PORT, 8000)")
    return parser


def _print_import(result: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    if result["status"] == "refused":
        return
    print(
        f"{result['file_name']}: {result['rows']} rows, {result['imported']} imported, "
        f"{result['duplicates']} already present, {result['rejected']} rejected "
        f"in {result['seconds']:.1f} s (import #{result['import_id']})"
    )
    for reason, count in result["reason_counts"].items():
        print(f"  {count:>9}  {reason}")
    if result["extra_columns"]:
        print(f"  ignored columns: {', '.join(result['extra_columns'])}")


def _import(args: argparse.Namespace) -> int:
    from billing.importer import ImportResult, import_file
    from db.engine import get_engine
    from db.migrations import migrate

    file_name = args.file.name
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        result = ImportResult(
            status="refused",
            import_id=None,
            file_name=file_name,
            error=f"Cannot read {args.file}: {exc.strerror or exc}.",
        ).as_dict()
    else:
        engine = get_engine()
        migrate(engine)
        result = import_file(
            engine=engine,
            data=data,
            file_name=file_name,
            lenient_documents=args.lenient_documents,
        ).as_dict()
    _print_import(result, as_json=args.json)
    if result["status"] == "refused":
        print(f"File refused: {result['error']}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from db.engine import get_engine
    from db.migrations import migrate

    applied = migrate(get_engine())
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return EXIT_OK


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from billing.api import create_app
    from billing.settings import get_settings

    settings = get_settings()
    port = args.port or settings.api_port
    uvicorn.run(create_app(settings=settings), host=args.host, port=port)
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from billing.worker import run_worker

    asyncio.run(run_worker())
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    from billing.dispatch import run_cycle
    from db.engine import get_engine
    from db.migrations import migrate

    engine = get_engine()
    migrate(engine)
    result = run_cycle(engine).as_dict()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            f"{result['issued']} boletos issued, {result['queued']} notices queued, "
            f"{result['sent']} sent, {result['failed']} failed, "
            f"{result['retrying']} to retry, {result['skipped']} skipped "
            f"in {result['seconds']:.1f} s"
        )
    if result["error"]:
        print(f"Cannot reach the mail server: {result['error']}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "import": _import,
        "migrate": _migrate,
        "worker": _worker,
        "dispatch": _dispatch,
        "api": _api,
    }
    try:
        return handlers[args.command](args)
    except OperatorError as exc:
        _report_failure(args, status="refused", error=exc.message)
        print(f"{exc.title}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:  # a bug or a lost database: one line here, the traceback with -v
        logging.getLogger("billing").info("command failed", exc_info=True)
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _report_failure(args, status="failed", error=error)
        print(f"Failed: {error}", file=sys.stderr)
        return EXIT_FAILED


def _report_failure(args: argparse.Namespace, *, status: str, error: str) -> None:
    """Keep the --json promise of one object on stdout, whatever happened."""
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "status": status,
                    "error": error,
                    "rows": 0,
                    "imported": 0,
                    "duplicates": 0,
                    "rejected": 0,
                    "seconds": 0.0,
                }
            )
        )
