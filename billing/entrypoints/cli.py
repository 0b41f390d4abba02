"""Command line for batch use and cron: `python -m billing import FILE`, `... migrate`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from billing.accounts.access import cli_actor
from billing.core.errors import OperatorError
from billing.core.i18n import N_, _

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
    importing.add_argument(
        "--mapping",
        metavar="NAME",
        help="read the file's columns with the column mapping saved under NAME (Upload page)",
    )

    commands.add_parser("migrate", help="apply pending database migrations")

    commands.add_parser("worker", help="run the notice worker: daily cycle and e-mail sending")
    dispatching = commands.add_parser(
        "dispatch", help="issue boletos, queue the notices due today and send them, now"
    )
    dispatching.add_argument(
        "--once", action="store_true", required=True, help="run one cycle in this process"
    )
    dispatching.add_argument("--json", action="store_true", help="print one JSON object")

    _add_users_parser(commands)
    _add_bank_file_parsers(commands)

    backing_up = commands.add_parser(
        "backup", help="write the whole database to FILE (a pg_dump custom-format archive)"
    )
    backing_up.add_argument("file", type=Path)
    restoring = commands.add_parser(
        "restore", help="load a backup into an empty database (--force: replace what it holds)"
    )
    restoring.add_argument("file", type=Path)
    restoring.add_argument(
        "--force", action="store_true", help="drop everything the database holds first"
    )

    serving = commands.add_parser("api", help="serve the payments API on API_PORT")
    serving.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    serving.add_argument("--port", type=int, help="port to listen on (default: API_PORT, 8000)")
    return parser


def _add_bank_file_parsers(commands: argparse._SubParsersAction) -> None:
    remessa = commands.add_parser(
        "remessa", help="write the CNAB 240 remessa of the charges not yet sent to the bank"
    )
    remessa.add_argument(
        "--out", type=Path, required=True, help="the file (a large remessa adds FILE-2...)"
    )
    remessa.add_argument("--json", action="store_true", help="print one JSON object")
    retorno = commands.add_parser("retorno", help="import a CNAB 240 retorno from the bank")
    retorno.add_argument("file", type=Path)
    retorno.add_argument("--json", action="store_true", help="print one JSON object")
    again = commands.add_parser(
        "registration-again",
        help="send a charge whose registration the bank refused in the next remessa again",
    )
    again.add_argument("charge_id", type=int)


def _registration_again(args: argparse.Namespace) -> int:
    from billing.cnab.service import send_registration_again
    from db.engine import get_engine

    result = send_registration_again(get_engine(), actor=cli_actor(), charge_id=args.charge_id)
    print(
        _("Charge #{id} ({debt_id}) goes to the bank again in the next remessa.").format(
            id=result.charge_id, debt_id=result.debt_id
        )
    )
    return EXIT_OK


def _remessa(args: argparse.Namespace) -> int:
    from billing.cnab.service import generate_remessa
    from db.engine import get_engine
    from db.migrations import migrate_database

    engine = get_engine()
    migrate_database()
    result = generate_remessa(engine, actor=cli_actor(), out=args.out)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    elif not result.files:
        print(_("Nothing new to send to the bank: no remessa written."))
    if result.without_address and not args.json:
        print(
            _(
                "{count} charges went out with no debtor address in segment Q; a bank "
                "that requires one will refuse them."
            ).format(count=result.without_address)
        )
    for item in [] if args.json else result.files:
        print(
            _(
                "{path}: NSA {nsa}, {registrations} registrations, {write_offs} write-offs, "
                "{records} lines, R$ {amount}"
            ).format(
                path=item.path,
                nsa=item.nsa,
                registrations=item.registrations,
                write_offs=item.write_offs,
                records=item.records,
                amount=item.total_amount,
            )
        )
    return EXIT_OK


def _retorno(args: argparse.Namespace) -> int:
    from billing.cnab.service import RetornoResult, import_retorno
    from db.engine import get_engine
    from db.migrations import migrate_database

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        result = RetornoResult(
            status="refused",
            file_name=args.file.name,
            error=_("Cannot read {file}: {reason}.").format(
                file=args.file, reason=exc.strerror or exc
            ),
        )
    else:
        engine = get_engine()
        migrate_database()
        result = import_retorno(engine, actor=cli_actor(), data=data, file_name=args.file.name)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    if result.status == "refused":
        print(_("Retorno refused: {error}").format(error=result.error), file=sys.stderr)
        return EXIT_REFUSED
    if not args.json:
        counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in result.counts.items())
        print(
            _(
                "{file}: retorno #{id} (NSA {nsa}), {entries} titles: {counts}; paid R$ {paid}"
            ).format(
                file=result.file_name,
                id=result.retorno_id,
                nsa=result.nsa,
                entries=result.entries,
                counts=counts or _("nothing"),
                paid=result.paid_amount,
            )
        )
    return EXIT_OK


def _add_users_parser(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="dashboard accounts: add, list, disable, ...")
    actions = users.add_subparsers(dest="users_command", required=True)
    roles = ("viewer", "operator", "admin")

    adding = actions.add_parser("add", help="add an account")
    adding.add_argument("email")
    adding.add_argument("--role", required=True, choices=roles)
    adding.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    adding.add_argument(
        "--no-password",
        action="store_true",
        help="an account that signs in through the company's identity provider only",
    )
    actions.add_parser("list", help="list the accounts").add_argument(
        "--json", action="store_true", help="print JSON"
    )
    actions.add_parser("disable", help="disable an account, ending its sessions").add_argument(
        "email"
    )
    setting = actions.add_parser("set-role", help="change an account's role")
    setting.add_argument("email")
    setting.add_argument("role", choices=roles)
    resetting = actions.add_parser("reset-password", help="set a new password, lifting a lock")
    resetting.add_argument("email")
    resetting.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def _print_import(result: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    if result["status"] == "refused":
        return
    print(
        _(
            "{file}: {rows} rows, {imported} imported, {duplicates} already present, "
            "{rejected} rejected in {seconds} s (import #{id})"
        ).format(
            file=result["file_name"],
            rows=result["rows"],
            imported=result["imported"],
            duplicates=result["duplicates"],
            rejected=result["rejected"],
            seconds=f"{result['seconds']:.1f}",
            id=result["import_id"],
        )
    )
    for reason, count in result["reason_counts"].items():
        print(f"  {count:>9}  {_(reason)}")
    if result["extra_columns"]:
        print(
            "  "
            + _("ignored columns: {columns}").format(columns=", ".join(result["extra_columns"]))
        )


DATABASE_UNREACHABLE = N_(
    "The database is not answering, so nothing was imported. Check DATABASE_URL, or "
    "that the server is running, and import the file again."
)


def _import(args: argparse.Namespace) -> int:
    from billing.imports.mapping import mapping_named
    from billing.imports.service import ImportResult, import_file
    from db.engine import DatabaseTrouble, database_trouble, get_engine
    from db.imports import IMPORT_CONNECTION_LOST
    from db.migrations import migrate_database

    file_name = args.file.name
    try:
        source = args.file.open("rb")  # read a piece at a time: memory stays flat
    except OSError as exc:
        result = ImportResult(
            status="refused",
            import_id=None,
            file_name=file_name,
            error=_("Cannot read {file}: {reason}.").format(
                file=args.file, reason=exc.strerror or exc
            ),
        ).as_dict()
    else:
        started = False
        try:
            engine = get_engine()
            migrate_database()
            started = True
            saved = mapping_named(engine, args.mapping) if args.mapping else None
            result = import_file(
                engine=engine,
                actor=cli_actor(),
                source=source,
                file_name=file_name,
                lenient_documents=args.lenient_documents,
                mapping=saved["columns"] if saved else None,
                mapping_name=saved["name"] if saved else None,
            ).as_dict()
        except Exception as exc:
            if database_trouble(exc) is not DatabaseTrouble.UNAVAILABLE:
                raise
            logging.getLogger("billing").info("import failed", exc_info=True)
            error = IMPORT_CONNECTION_LOST if started else _(DATABASE_UNREACHABLE)
            _report_failure(args, status="failed", error=error)
            print(_("Failed: {error}").format(error=error), file=sys.stderr)
            return EXIT_FAILED
        finally:
            source.close()
    _print_import(result, as_json=args.json)
    if result["status"] == "refused":
        print(_("File refused: {error}").format(error=result["error"]), file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from db.migrations import migrate_database

    applied = migrate_database()
    print(
        _("applied: {names}").format(names=", ".join(applied))
        if applied
        else _("the database is up to date")
    )
    return EXIT_OK


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from billing.core.settings import get_settings
    from billing.entrypoints.api import create_app

    settings = get_settings()
    port = args.port or settings.api_port
    uvicorn.run(create_app(settings=settings), host=args.host, port=port)
    return EXIT_OK


def _backup(args: argparse.Namespace) -> int:
    from billing.operations.backup import backup_database
    from db.engine import resolve_migration_url

    result = backup_database(actor=cli_actor(), owner_url=resolve_migration_url(), path=args.file)
    print(
        _("backed up to {path}: {size} bytes in {seconds} s ({tool}); sha256 {sha256}").format(
            path=result.path,
            size=f"{result.size_bytes:,}",
            seconds=f"{result.seconds:.1f}",
            tool=result.tool,
            sha256=result.sha256,
        )
    )
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from billing.operations.backup import restore_database
    from db.engine import application_role, resolve_migration_url

    owner_url = resolve_migration_url()
    result = restore_database(
        actor=cli_actor(),
        owner_url=owner_url,
        path=args.file,
        force=args.force,
        app_role=application_role(),
    )
    replaced = _(" (what the database held was dropped first)") if result.replaced else ""
    print(
        _("restored {path} in {seconds} s{replaced} ({tool})").format(
            path=result.path, seconds=f"{result.seconds:.1f}", replaced=replaced, tool=result.tool
        )
    )
    if result.migrations_applied:
        print(_("then applied: {names}").format(names=", ".join(result.migrations_applied)))
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from billing.entrypoints.worker import run_worker

    asyncio.run(run_worker())
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    from billing.notices.dispatch import run_cycle
    from db.engine import get_engine
    from db.migrations import migrate_database

    engine = get_engine()
    migrate_database()
    result = run_cycle(engine, actor=cli_actor()).as_dict()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            _(
                "{issued} boletos issued, {queued} notices queued, {sent} sent, {failed} failed, "
                "{retrying} to retry, {skipped} skipped in {seconds} s"
            ).format(**{**result, "seconds": f"{result['seconds']:.1f}"})
        )
    if result["error"]:
        print(
            _("Cannot reach the mail server: {error}").format(error=result["error"]),
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _users(args: argparse.Namespace) -> int:
    from billing.accounts import users as accounts
    from db.engine import get_engine
    from db.migrations import migrate_database

    engine = get_engine()
    migrate_database()
    actor, command = cli_actor(), args.users_command
    if command == "list":
        listed = accounts.list_accounts(engine, actor=actor)
        _print_accounts(listed, as_json=args.json)
        return EXIT_OK
    if command == "add":
        password = None if args.no_password else _read_password(stdin=args.password_stdin)
        account = accounts.create_account(
            engine, actor=actor, email=args.email, role=args.role, password=password
        )
        print(_("added {email} ({role})").format(email=account.email, role=account.role.value))
    elif command == "disable":
        account = accounts.disable_account(engine, actor=actor, email=args.email)
        print(_("disabled {email}; their sessions are ended").format(email=account.email))
    elif command == "set-role":
        account = accounts.set_role(engine, actor=actor, email=args.email, role=args.role)
        print(_("{email} is now {role}").format(email=account.email, role=account.role.value))
    else:
        password = _read_password(stdin=args.password_stdin)
        account = accounts.reset_password(engine, actor=actor, email=args.email, password=password)
        print(
            _("new password set for {email}; their sessions are ended").format(email=account.email)
        )
    return EXIT_OK


def _read_password(*, stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice at a prompt."""
    import getpass

    from billing.accounts.users import check_password

    if stdin:
        return check_password(sys.stdin.readline().rstrip("\r\n"))
    password = check_password(getpass.getpass(_("Password (at least 12 characters): ")))
    if getpass.getpass(_("The same password again: ")) != password:
        raise OperatorError(_("The two passwords differ."), title=_("Not changed"))
    return password


def _print_accounts(listed: list, *, as_json: bool) -> None:
    rows = [
        {
            "email": a.email,
            "role": a.role.value,
            "status": "disabled" if a.disabled else "active",
            "password": a.has_password,
            "lastSignIn": a.last_sign_in_at.isoformat() if a.last_sign_in_at else None,
            "lockedUntil": a.locked_until.isoformat() if a.locked_until else None,
        }
        for a in listed
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        print(
            f"{row['email']:<40} {row['role']:<9} {row['status']:<9} "
            + _("last sign-in: {when}").format(when=row["lastSignIn"] or _("never"))
        )


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
        "users": _users,
        "remessa": _remessa,
        "retorno": _retorno,
        "registration-again": _registration_again,
        "backup": _backup,
        "restore": _restore,
    }
    try:
        return handlers[args.command](args)
    except OperatorError as exc:
        _report_failure(args, status="refused", error=exc.message)
        print(f"{_(exc.title)}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:  # a bug or a lost database: one line here, the traceback with -v
        logging.getLogger("billing").info("command failed", exc_info=True)
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _report_failure(args, status="failed", error=error)
        print(_("Failed: {error}").format(error=error), file=sys.stderr)
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
