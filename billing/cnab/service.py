"""The bank's side of a charge: generating remessas and importing retornos, with the
role checks, the audit trail and the charges' statuses.

Decisions, so a reader need not rediscover them:

* A remessa carries every charge issued and never sent for registration, and a
  write-off request (pedido de baixa) for every canceled charge that was sent and not
  refused and was never written off; `remessa_items` records each, once per kind and
  registration attempt, so generating again gives only what is new.
* A registration the bank refused (a retorno's 03) goes out again only when an operator
  asks for it (`send_registration_again`, after correcting the cause): the refusal is
  cleared and the charge's next registration attempt opened, which the next remessa
  carries, once. Nothing is resent on its own: the same file would be refused again.
* Segment Q's address comes from `debtor_addresses` (stored by an operator,
  `save_debtor_address`; the debtor file has none and keeps its format). A charge whose
  debtor has none goes out with the address blank, as CAIXA accepts when the
  beneficiary prints and delivers the boletos (SIGCB 67.118, 11.3Q-16.3Q); each remessa
  counts those charges (`without_address`) so the operator sees what a bank such as BB,
  which refuses a registration without a valid CEP, would turn down.
* A file holds one batch of at most 99,999 detail records (33,333 charges with P, Q
  and R); a larger remessa is several files, each with its own NSA, generated in one
  transaction.
* The NSA comes from a counter row taken in that transaction, under a lock only one
  generation holds: a committed number is never given again, and a generation that
  fails gives its number back, so the bank receives numbers without gaps.
* Streaming: each file's charges come from a COPY of a query (the server produces rows
  while the lines of the previous ones are formatted), each title's segments are
  written by one function compiled from the layout's tables, and groups of lines are
  hashed, compressed and written by a second thread while the next group is made. The
  database keeps each file zlib-compressed (a few MB at most), so it downloads again
  byte for byte, whatever happened to the charges since.
* A retorno is read and checked whole before anything is applied (billing.cnab.retorno):
  a file that is not a CNAB 240 retorno of this bank and beneficiary is refused with one
  sentence and writes nothing, not even a history row. Then each title is applied in a
  transaction of its own, in file order, and recorded in `retorno_items`; every change
  is idempotent, so importing the same retorno again changes nothing, and an import cut
  short is finished by importing the file again.
* Liquidações are payments recorded through billing.payments.service.record_payment, the
  webhook's idempotent path (source 'retorno'): paid, partially paid and overpaid are
  decided there from the sum of payments. The amount is what the payer paid; the amount
  credited, the fee and the credit date are kept on the retorno's line and in the
  payment's payload. A liquidação the webhook already recorded (same charge, amount and
  day) is not recorded twice.
* A baixa of an open charge cancels it (the bank no longer collects it), with a
  'written_off' event and an audit row; of a canceled charge it confirms our request.
* Actor: whoever imports the file (a signed-in operator, `cli:<user>`, or `api`) is the
  actor of everything it changes, because someone with a role vouched for the file;
  the payments say where the money came from (source 'retorno', the retorno's id and
  line in their payload).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.boletos.codes import Beneficiary
from billing.boletos.issuing import beneficiary_from_settings
from billing.cnab.layouts import (
    BANK_LAYOUTS,
    MAX_BATCH_RECORDS,
    OCCURRENCE_LIQUIDATED,
    OCCURRENCE_REGISTERED,
    OCCURRENCE_REJECTED,
    OCCURRENCE_WRITTEN_OFF,
    OCCURRENCES,
    BankLayout,
    rejection_text,
)
from billing.cnab.remessa import (
    TITLE_COLUMNS,
    RemessaTerms,
    RemessaWriter,
    records_per_item,
)
from billing.cnab.retorno import Retorno, RetornoEntry, read_retorno
from billing.core.errors import FileRefused, OperatorError
from billing.core.i18n import _
from billing.core.settings import Settings, get_settings
from billing.payments.service import record_charge_change, record_payment
from db import bank_files as bank_db
from db import payments as payments_db
from db.bank_files import BankCharge, DebtorAddress, RemessaRow, RetornoItem, RetornoRow

log = logging.getLogger(__name__)

RETORNO_PAYER = "CNAB retorno"  # paid_by when the bank leaves the payer's name out
_CENT = Decimal("0.01")


def bank_layout(settings: Settings) -> BankLayout:
    """The CNAB 240 layout of the configured bank (BOLETO_LAYOUT and BANK_CODE)."""
    layout = BANK_LAYOUTS.get(settings.boleto_layout)
    if layout is None or layout.bank_code != settings.bank_code:
        raise OperatorError(
            _(
                "There is no CNAB 240 layout for BOLETO_LAYOUT {layout} with BANK_CODE "
                "{bank_code}; use caixa_sigcb with 104 or bb_convenio7 with 001."
            ).format(layout=repr(settings.boleto_layout), bank_code=repr(settings.bank_code)),
            title=_("Bank settings"),
        )
    return layout


def remessa_terms(settings: Settings) -> RemessaTerms:
    """Fine, interest and discount as the settings ask, refused when they make no sense."""
    for name, value in (
        ("BANK_FINE_PERCENT", settings.bank_fine_percent),
        ("BANK_INTEREST_MONTHLY_PERCENT", settings.bank_interest_monthly_percent),
        ("BANK_DISCOUNT_PERCENT", settings.bank_discount_percent),
    ):
        if not Decimal(0) <= value < Decimal(100) or value != value.quantize(_CENT):
            raise OperatorError(
                _(
                    "{name} must be a percentage from 0 to 99.99 with at most two decimals, "
                    "not {value}."
                ).format(name=name, value=value),
                title=_("Bank settings"),
            )
    if not 0 <= settings.bank_discount_days <= 365:
        raise OperatorError(
            _("BANK_DISCOUNT_DAYS must be from 0 to 365."), title=_("Bank settings")
        )
    return RemessaTerms(
        fine_percent=settings.bank_fine_percent,
        interest_monthly_percent=settings.bank_interest_monthly_percent,
        discount_percent=settings.bank_discount_percent,
        discount_days=settings.bank_discount_days,
    )


# --- Remessa ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RemessaFile:
    remessa_id: int
    nsa: int
    file_name: str
    registrations: int
    write_offs: int
    records: int
    total_amount: Decimal
    size_bytes: int
    sha256: str
    path: str | None = None
    without_address: int = 0  # registrations whose segment Q carried no address


@dataclass(frozen=True)
class RemessaResult:
    files: list[RemessaFile] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def registrations(self) -> int:
        return sum(item.registrations for item in self.files)

    @property
    def write_offs(self) -> int:
        return sum(item.write_offs for item in self.files)

    @property
    def without_address(self) -> int:
        return sum(item.without_address for item in self.files)

    def as_dict(self) -> dict[str, Any]:
        """For --json: amounts as strings with two decimals, never floats."""
        return {
            "status": "generated" if self.files else "nothing_new",
            "registrations": self.registrations,
            "writeOffs": self.write_offs,
            "withoutAddress": self.without_address,
            "seconds": round(self.seconds, 3),
            "files": [
                {
                    **{key: value for key, value in asdict(item).items() if key != "total_amount"},
                    "total_amount": str(item.total_amount),
                }
                for item in self.files
            ],
        }


@dataclass(frozen=True)
class _PlannedFile:
    """Which candidates one file takes: numbers [first, first + count) of each kind."""

    first_write_off: int
    write_offs: int
    first_registration: int
    registrations: int


def plan_files(*, write_offs: int, registrations: int, terms: RemessaTerms) -> list[_PlannedFile]:
    """Fill files of one batch each: write-off requests first, then registrations, never
    more than 99,999 detail records in a batch."""
    per_registration = records_per_item("registration", terms)
    plan: list[_PlannedFile] = []
    next_write_off = next_registration = 1
    while next_write_off <= write_offs or next_registration <= registrations:
        room = MAX_BATCH_RECORDS
        taken_write_offs = min(write_offs - next_write_off + 1, room)
        room -= taken_write_offs
        taken_registrations = min(registrations - next_registration + 1, room // per_registration)
        plan.append(
            _PlannedFile(next_write_off, taken_write_offs, next_registration, taken_registrations)
        )
        next_write_off += taken_write_offs
        next_registration += taken_registrations
    return plan


def remessa_file_name(bank_code: str, nsa: int) -> str:
    return f"remessa_{bank_code}_{nsa:06d}.rem"


def output_paths(out: Path, count: int) -> list[Path]:
    """Where a remessa of `count` files is written: `out`, then out-2, out-3..."""
    return [out] + [out.with_name(f"{out.stem}-{k}{out.suffix}") for k in range(2, count + 1)]


def generate_remessa(
    engine: Engine,
    *,
    actor: Actor,
    out: Path | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> RemessaResult:
    """Generate the remessa of everything not yet sent; write it to `out` (and its
    siblings when it takes several files) and keep it in the database. Nothing new to
    send: no file, no NSA taken. Refused while another remessa is being generated."""
    require(actor, Permission.BANK_FILES)
    settings = settings or get_settings()
    layout = bank_layout(settings)
    beneficiary = beneficiary_from_settings(settings)
    terms = remessa_terms(settings)
    generated_at = (now or datetime.now(ZoneInfo(settings.timezone))).replace(microsecond=0)
    started = time.monotonic()
    written: list[tuple[Path, Path]] = []  # (temporary, final)
    try:
        with engine.begin() as conn:
            if not bank_db.try_lock_remessa(conn):
                raise OperatorError(
                    _(
                        "Another remessa is being generated right now; "
                        "try again when it has finished."
                    ),
                    title=_("Remessa not generated"),
                )
            counts = bank_db.collect_candidates(conn)
            plan = plan_files(
                write_offs=counts["write_off"], registrations=counts["registration"], terms=terms
            )
            if not plan:
                return RemessaResult(seconds=time.monotonic() - started)
            files = _create_files(conn, plan, layout, generated_at, actor)
            paths = output_paths(out, len(files)) if out is not None else [None] * len(files)
            results = []
            for (remessa_id, nsa, file_name), path in zip(files, paths, strict=True):
                temporary = _temporary(path) if path is not None else None
                if temporary is not None and path is not None:
                    written.append((temporary, path))
                results.append(
                    _write_file(
                        conn,
                        remessa_id=remessa_id,
                        nsa=nsa,
                        file_name=file_name,
                        layout=layout,
                        beneficiary=beneficiary,
                        terms=terms,
                        settings=settings,
                        generated_at=generated_at,
                        temporary=temporary,
                        path=path,
                    )
                )
            result = RemessaResult(files=results, seconds=time.monotonic() - started)
            audit.record(
                conn,
                actor=actor,
                action=audit.Action.REMESSA,
                subject=f"remessa:{results[0].remessa_id}",
                details={
                    "nsa": [item.nsa for item in results],
                    "registrations": result.registrations,
                    "writeOffs": result.write_offs,
                    "withoutAddress": result.without_address,
                    "totalAmount": str(sum((item.total_amount for item in results), Decimal(0))),
                    "sha256": [item.sha256 for item in results],
                },
            )
    except BaseException:
        for temporary, _final in written:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, final in written:  # committed: the files take their names
        os.replace(temporary, final)
    log.info(
        "remessa: %d registrations, %d write-offs in %d files (NSA %s) in %.1f s",
        result.registrations,
        result.write_offs,
        len(result.files),
        ", ".join(str(item.nsa) for item in result.files),
        result.seconds,
    )
    return result


def _create_files(
    conn: Connection,
    plan: list[_PlannedFile],
    layout: BankLayout,
    generated_at: datetime,
    actor: Actor,
) -> list[tuple[int, int, str]]:
    """A row and an NSA for each planned file, and its charges recorded in it."""
    files = []
    for _planned in plan:
        nsa = bank_db.next_nsa(conn, layout.bank_code)
        file_name = remessa_file_name(layout.bank_code, nsa)
        remessa_id = bank_db.create_remessa(
            conn,
            bank_code=layout.bank_code,
            layout=layout.key,
            nsa=nsa,
            file_name=file_name,
            generated_at=generated_at,
            actor=actor.name,
        )
        files.append((remessa_id, nsa, file_name))
    ids = [remessa_id for remessa_id, _nsa, _name in files]
    with_write_offs = [k for k, item in enumerate(plan) if item.write_offs]
    bank_db.assign_items(
        conn,
        kind="write_off",
        remessa_ids=[ids[k] for k in with_write_offs],
        first_numbers=[plan[k].first_write_off for k in with_write_offs],
        offsets=[0 for _file in with_write_offs],
    )
    with_registrations = [k for k, item in enumerate(plan) if item.registrations]
    bank_db.assign_items(
        conn,
        kind="registration",
        remessa_ids=[ids[k] for k in with_registrations],
        first_numbers=[plan[k].first_registration for k in with_registrations],
        offsets=[plan[k].write_offs for k in with_registrations],
    )
    return files


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _write_file(
    conn: Connection,
    *,
    remessa_id: int,
    nsa: int,
    file_name: str,
    layout: BankLayout,
    beneficiary: Beneficiary,
    terms: RemessaTerms,
    settings: Settings,
    generated_at: datetime,
    temporary: Path | None,
    path: Path | None,
) -> RemessaFile:
    """Stream one file's charges into its lines, then keep the file on its row."""
    handle = temporary.open("wb") if temporary is not None else None
    try:
        writer = RemessaWriter(
            layout=layout,
            beneficiary=beneficiary,
            terms=terms,
            nsa=nsa,
            generated_at=generated_at,
            out=handle,
            wallet_variation=settings.beneficiary_wallet_variation,
        )
        if bank_db.ITEM_COLUMNS != TITLE_COLUMNS:  # the one place the two orders meet
            raise RuntimeError("db.bank_files.ITEM_COLUMNS is not the writer's TITLE_COLUMNS")
        for charge in bank_db.stream_items(
            conn,
            remessa_id=remessa_id,
            timezone=settings.timezone,
            interest_monthly_percent=terms.interest_monthly_percent,
            discount_percent=terms.discount_percent,
            discount_days=terms.discount_days,
        ):
            if charge[0] == "registration":
                writer.registration(charge)
            else:
                writer.write_off(charge)
        totals = writer.finish()
    finally:
        if handle is not None:
            handle.close()
    bank_db.store_remessa(
        conn,
        remessa_id=remessa_id,
        registrations=totals.registrations,
        write_offs=totals.write_offs,
        records=totals.records,
        total_amount=totals.total_amount,
        size_bytes=totals.size_bytes,
        sha256=totals.sha256,
        content=totals.compressed,
        without_address=totals.without_address,
    )
    return RemessaFile(
        remessa_id=remessa_id,
        nsa=nsa,
        file_name=file_name,
        registrations=totals.registrations,
        write_offs=totals.write_offs,
        records=totals.records,
        total_amount=totals.total_amount,
        size_bytes=totals.size_bytes,
        sha256=totals.sha256,
        path=str(path) if path is not None else None,
        without_address=totals.without_address,
    )


def remessa_history(engine: Engine, *, actor: Actor, limit: int = 200) -> list[RemessaRow]:
    """The remessas generated, newest first (without their contents)."""
    require(actor, Permission.READ)
    return bank_db.list_remessas(engine, limit=limit)


def remessa_download(engine: Engine, *, actor: Actor, remessa_id: int) -> tuple[str, bytes]:
    """A remessa's file name and bytes, exactly as generated; the download is audited
    (the file holds debtors' names and CPF/CNPJ)."""
    require(actor, Permission.BANK_FILES)
    with engine.begin() as conn:
        row = bank_db.remessa_content(conn, remessa_id)
        if row is None:
            raise OperatorError(
                _("There is no remessa #{id}.").format(id=remessa_id), title=_("Not found")
            )
        data = zlib.decompress(row["content"])
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise OperatorError(
                _(
                    "The stored copy of remessa #{id} does not match its sha256; "
                    "it was not downloaded. Tell the team."
                ).format(id=remessa_id),
                title=_("Remessa damaged"),
            )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.REMESSA_DOWNLOAD,
            subject=f"remessa:{remessa_id}",
            details={"nsa": row["nsa"], "file": row["file_name"], "sha256": row["sha256"]},
        )
    return row["file_name"], data


# --- Retorno ---------------------------------------------------------------------------

OUTCOME_GROUPS = (
    "registered", "rejected", "liquidated", "written_off", "unchanged", "unknown", "ignored",
)  # fmt: skip


@dataclass
class RetornoResult:
    status: str  # done, refused (nothing written) or failed
    file_name: str
    retorno_id: int | None = None
    nsa: int | None = None
    entries: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    paid_amount: Decimal = Decimal("0.00")
    credited_amount: Decimal = Decimal("0.00")
    fees: Decimal = Decimal("0.00")
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "retornoId": self.retorno_id,
            "fileName": self.file_name,
            "nsa": self.nsa,
            "entries": self.entries,
            **{group: self.counts.get(group, 0) for group in OUTCOME_GROUPS},
            "paidAmount": str(self.paid_amount),
            "creditedAmount": str(self.credited_amount),
            "fees": str(self.fees),
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class _Applied:
    outcome: str  # one of OUTCOME_GROUPS
    detail: str
    charge_id: int | None = None
    payment_id: int | None = None


def import_retorno(
    engine: Engine,
    *,
    actor: Actor,
    data: bytes,
    file_name: str,
    settings: Settings | None = None,
) -> RetornoResult:
    """Read a retorno and apply what the bank reports; refused (status 'refused', one
    sentence in `error`, nothing written) when it is not a retorno of this bank."""
    require(actor, Permission.BANK_FILES)
    require(actor, Permission.CHANGE_CHARGES)
    settings = settings or get_settings()
    started = time.monotonic()
    layout = bank_layout(settings)
    beneficiary = beneficiary_from_settings(settings)
    try:
        retorno = read_retorno(data, layout=layout, beneficiary=beneficiary)
    except FileRefused as refusal:
        return RetornoResult(status="refused", file_name=file_name, error=refusal.message)
    result = RetornoResult(
        status="done", file_name=file_name, nsa=retorno.nsa, entries=len(retorno.entries)
    )
    result.paid_amount = sum(
        (e.paid_amount for e in retorno.entries if e.movement in OCCURRENCE_LIQUIDATED),
        Decimal("0.00"),
    )
    result.credited_amount = sum(
        (e.credited_amount for e in retorno.entries if e.movement in OCCURRENCE_LIQUIDATED),
        Decimal("0.00"),
    )
    result.fees = sum((e.fee for e in retorno.entries), Decimal("0.00"))
    with engine.connect() as live:
        with live.begin():
            result.retorno_id = bank_db.create_retorno(
                live,
                file_name=file_name,
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                bank_code=layout.bank_code,
                nsa=retorno.nsa,
                generated_on=retorno.generated_on,
                actor=actor.name,
            )
            bank_db.hold_retorno(live, result.retorno_id)
        try:
            counts = _apply_all(engine, retorno, result.retorno_id, actor, settings)
        except Exception as exc:
            with live.begin():
                bank_db.finish_retorno(
                    live,
                    retorno_id=result.retorno_id,
                    status="failed",
                    seconds=time.monotonic() - started,
                    error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                )
            raise
        finally:
            with live.begin():
                bank_db.release_retorno(live, result.retorno_id)
        result.counts = dict(counts)
        result.seconds = time.monotonic() - started
        with engine.begin() as conn:
            bank_db.finish_retorno(
                conn,
                retorno_id=result.retorno_id,
                status="done",
                seconds=result.seconds,
                counts={
                    "entries": result.entries,
                    **{group: counts.get(group, 0) for group in OUTCOME_GROUPS},
                    "paid_amount": result.paid_amount,
                    "credited_amount": result.credited_amount,
                    "fees": result.fees,
                },
            )
            audit.record(
                conn,
                actor=actor,
                action=audit.Action.RETORNO,
                subject=f"retorno:{result.retorno_id}",
                details={
                    "file": file_name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "nsa": retorno.nsa,
                    "entries": result.entries,
                    **{group: counts.get(group, 0) for group in OUTCOME_GROUPS},
                    "paidAmount": str(result.paid_amount),
                },
            )
    return result


def _apply_all(
    engine: Engine, retorno: Retorno, retorno_id: int, actor: Actor, settings: Settings
) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in retorno.entries:
        applied = _apply(engine, entry, retorno_id, actor, settings)
        counts[applied.outcome] += 1
    return counts


def _apply(
    engine: Engine, entry: RetornoEntry, retorno_id: int, actor: Actor, settings: Settings
) -> _Applied:
    """Apply one title's occurrence in a transaction of its own, and record its line."""
    if entry.movement in OCCURRENCE_LIQUIDATED and entry.sequence is not None:
        applied = _liquidation(engine, entry, retorno_id, actor, settings)
        with engine.begin() as conn:
            _record_item(conn, retorno_id, entry, applied)
        return applied
    with engine.begin() as conn:
        charge = (
            bank_db.charge_by_nosso_numero(conn, entry.sequence, lock=True)
            if entry.sequence is not None
            else None
        )
        if charge is None:
            applied = _Applied("unknown", _not_ours(entry))
        elif entry.movement in OCCURRENCE_REGISTERED:
            applied = _registered(conn, charge, retorno_id, actor)
        elif entry.movement in OCCURRENCE_REJECTED:
            applied = _rejected(conn, charge, entry, actor)
        elif entry.movement in OCCURRENCE_WRITTEN_OFF:
            applied = _written_off(conn, charge, entry, retorno_id, actor)
        else:
            applied = _Applied("ignored", _occurrence(entry), charge["id"])
        _record_item(conn, retorno_id, entry, applied)
    return applied


def _not_ours(entry: RetornoEntry) -> str:
    return f"No boleto of this fund has nosso número {entry.nosso_numero}."


def _occurrence(entry: RetornoEntry) -> str:
    name = OCCURRENCES.get(entry.movement, "ocorrência não catalogada")
    text = f"{entry.movement} {name}"
    if entry.movement in ("26", "30"):  # a rejected instruction says why
        text += f": {rejection_text(entry.reasons)}"
    return text


def _registered(conn: Connection, charge: BankCharge, retorno_id: int, actor: Actor) -> _Applied:
    if charge["registered_at"] is not None:
        return _Applied("unchanged", "Registration already confirmed.", charge["id"])
    status = "registered" if charge["status"] == "issued" else charge["status"]
    bank_db.mark_registered(conn, charge["id"], status=status)
    payments_db.insert_event(
        conn,
        charge_id=charge["id"],
        kind="registered",
        from_status=charge["status"],
        to_status=status,
        reason=f"Registration confirmed by the bank (retorno #{retorno_id}).",
        actor=actor.name,
    )
    return _Applied("registered", "02 Entrada confirmada.", charge["id"])


def _rejected(conn: Connection, charge: BankCharge, entry: RetornoEntry, actor: Actor) -> _Applied:
    reason = f"03 Entrada rejeitada: {rejection_text(entry.reasons)}"
    if charge["registered_at"] is not None:  # e.g. 63, already registered: nothing to flag
        return _Applied("ignored", f"{reason} (the boleto is registered)", charge["id"])
    if charge["registration_rejection"] == reason:
        return _Applied("unchanged", reason, charge["id"])
    bank_db.mark_rejected(conn, charge["id"], reason)
    payments_db.insert_event(
        conn,
        charge_id=charge["id"],
        kind="registration_rejected",
        from_status=charge["status"],
        to_status=charge["status"],
        reason=reason,
        actor=actor.name,
    )
    return _Applied("rejected", reason, charge["id"])


def _written_off(
    conn: Connection, charge: BankCharge, entry: RetornoEntry, retorno_id: int, actor: Actor
) -> _Applied:
    if charge["written_off_at"] is not None:
        return _Applied("unchanged", "Write-off already recorded.", charge["id"])
    previous = charge["status"]
    status = previous if previous in ("paid", "canceled") else "canceled"
    bank_db.mark_written_off(conn, charge["id"], status=status)
    reason = f"{_occurrence(entry)} (retorno #{retorno_id})."
    payments_db.insert_event(
        conn,
        charge_id=charge["id"],
        kind="written_off",
        from_status=previous,
        to_status=status,
        reason=reason,
        actor=actor.name,
    )
    if status != previous:
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.WRITTEN_OFF,
            subject=f"charge:{charge['id']}",
            details={"debtId": charge["debt_id"], "from": previous, "retornoId": retorno_id},
        )
        reason = f"{reason} The charge is canceled."
    return _Applied("written_off", reason, charge["id"])


def _liquidation(
    engine: Engine, entry: RetornoEntry, retorno_id: int, actor: Actor, settings: Settings
) -> _Applied:
    """A payment, through the webhook's idempotent path."""
    assert entry.sequence is not None
    with engine.connect() as conn:
        charge = bank_db.charge_by_nosso_numero(conn, entry.sequence)
        if charge is None:
            return _Applied("unknown", _not_ours(entry))
        paid_on = entry.occurred_on or entry.credited_on
        if entry.paid_amount <= 0 or paid_on is None:
            return _Applied(
                "ignored", f"{_occurrence(entry)} without an amount paid or a date.", charge["id"]
            )
        earlier = payments_db.payment_like(
            conn,
            charge_id=charge["id"],
            source="webhook",
            paid_amount=entry.paid_amount,
            paid_on=paid_on,
            timezone=settings.timezone,
        )
    if earlier is not None:
        return _Applied(
            "unchanged",
            f"Already recorded from the bank's webhook (payment #{earlier}).",
            charge["id"],
            earlier,
        )
    outcome = record_payment(
        engine,
        debt_id=charge["debt_id"],
        paid_at=datetime.combine(paid_on, clock(), ZoneInfo(settings.timezone)),
        paid_amount=entry.paid_amount,
        paid_by=entry.payer_name or RETORNO_PAYER,
        source="retorno",
        payload=_payment_payload(entry, retorno_id),
        actor=actor,
        timezone=settings.timezone,
    )
    detail = f"{_occurrence(entry)}: the charge is {outcome.charge_status.replace('_', ' ')}."
    if outcome.note:
        detail += f" {outcome.note}"
    if outcome.status == "duplicate":
        return _Applied("unchanged", "Payment already recorded.", charge["id"], outcome.payment_id)
    return _Applied("liquidated", detail, charge["id"], outcome.payment_id)


def _payment_payload(entry: RetornoEntry, retorno_id: int) -> dict[str, Any]:
    """What the bank said about the payment, kept with it."""
    return {
        "retornoId": retorno_id,
        "line": entry.line,
        "occurrence": entry.movement,
        "nossoNumero": entry.nosso_numero,
        "paidAmount": str(entry.paid_amount),
        "creditedAmount": str(entry.credited_amount),
        "fee": str(entry.fee),
        "interestFine": str(entry.interest_fine),
        "discount": str(entry.discount),
        "rebate": str(entry.rebate),
        "occurredOn": _iso(entry.occurred_on),
        "creditedOn": _iso(entry.credited_on),
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _record_item(conn: Connection, retorno_id: int, entry: RetornoEntry, applied: _Applied) -> None:
    liquidation = entry.movement in OCCURRENCE_LIQUIDATED
    bank_db.insert_retorno_item(
        conn,
        retorno_id=retorno_id,
        line=entry.line,
        movement=entry.movement,
        nosso_numero=entry.nosso_numero,
        charge_id=applied.charge_id,
        outcome=applied.outcome,
        detail=applied.detail,
        paid_amount=entry.paid_amount if liquidation else None,
        credited_amount=entry.credited_amount if liquidation else None,
        fee=entry.fee,
        occurred_on=entry.occurred_on,
        credited_on=entry.credited_on,
        payment_id=applied.payment_id,
    )


def retorno_history(engine: Engine, *, actor: Actor, limit: int = 200) -> list[RetornoRow]:
    """Every retorno received, newest first; those left running by a dead process are
    closed as failed first (the same rule as the imports' history)."""
    require(actor, Permission.READ)
    bank_db.mark_interrupted_retornos(engine)
    return bank_db.list_retornos(engine, limit=limit)


def retorno_report(engine: Engine, *, actor: Actor, retorno_id: int) -> list[RetornoItem]:
    """What each title of a retorno did, in file order."""
    require(actor, Permission.READ)
    with engine.connect() as conn:
        return bank_db.retorno_items(conn, retorno_id)


# --- What an operator corrects ------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationResent:
    charge_id: int
    debt_id: str
    rejection: str  # the bank's refusal that was cleared
    attempt: int  # the registration attempt the next remessa carries


def send_registration_again(engine: Engine, *, actor: Actor, charge_id: int) -> RegistrationResent:
    """Clear the bank's refusal of a charge's registration so the next remessa carries it
    again (once), after the operator corrected what the bank refused; audited."""
    if not actor.can(Permission.CHANGE_CHARGES):
        require(actor, Permission.BANK_FILES)
    with engine.begin() as conn:
        charge = bank_db.charge_for_resend(conn, charge_id)
        if charge is None:
            raise OperatorError(
                _("There is no charge #{id}.").format(id=charge_id), title=_("Not found")
            )
        rejection = charge["registration_rejection"]
        if rejection is None:
            raise OperatorError(
                _(
                    "The bank has not refused the registration of charge #{id}: there "
                    "is nothing to send again."
                ).format(id=charge_id),
                title=_("Nothing to send again"),
            )
        if charge["status"] != "issued":
            raise OperatorError(
                _(
                    "Charge #{id} is {status}: only an issued charge, still "
                    "owed in full, is sent to the bank for registration."
                ).format(id=charge_id, status=charge["status"]),
                title=_("Nothing to send again"),
            )
        attempt = bank_db.open_registration_attempt(conn, charge_id)
        record_charge_change(  # the history's reason: what the bank had refused
            conn,
            actor=actor,
            action=audit.Action.REGISTRATION_RESENT,
            charge_id=charge_id,
            debt_id=charge["debt_id"],
            kind="registration_resent",
            from_status=charge["status"],
            to_status=charge["status"],
            reason=rejection,
            details={"rejection": rejection, "attempt": attempt},
        )
    log.info("charge %s: registration to be sent again (attempt %d)", charge_id, attempt)
    return RegistrationResent(
        charge_id=charge_id, debt_id=charge["debt_id"], rejection=rejection, attempt=attempt
    )


_STATES = frozenset(
    ("AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
     "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO")
)  # fmt: skip


def debtor_address(engine: Engine, *, actor: Actor, debtor_id: int) -> DebtorAddress | None:
    """The postal address a remessa's segment Q carries for a debtor, if one is stored."""
    require(actor, Permission.READ)
    with engine.connect() as conn:
        return bank_db.debtor_address(conn, debtor_id)


def save_debtor_address(
    engine: Engine,
    *,
    actor: Actor,
    debtor_id: int,
    street: str,
    district: str,
    zip_code: str,
    city: str,
    state: str,
) -> None:
    """Store the postal address the remessa's segment Q carries for a debtor (personal
    data: audited). Refused, with a sentence, when a bank could not use it."""
    require(actor, Permission.CHANGE_CHARGES)
    street, district, city = street.strip(), district.strip(), city.strip()
    digits = "".join(ch for ch in zip_code if ch.isdigit())
    state = state.strip().upper()
    problems = []
    if not street:
        problems.append(_("the street is empty"))
    if len(digits) != 8 or len(digits) != len(zip_code.replace("-", "").replace(".", "").strip()):
        problems.append(_("the CEP {zip_code} is not 8 digits").format(zip_code=repr(zip_code)))
    if not city:
        problems.append(_("the city is empty"))
    if state not in _STATES:
        problems.append(_("{state} is not a Brazilian state (UF)").format(state=repr(state)))
    if problems:
        raise OperatorError(
            _("The address was not saved: {problems}.").format(problems="; ".join(problems)),
            title=_("Address"),
        )
    with engine.begin() as conn:
        if not bank_db.debtor_exists(conn, debtor_id):
            raise OperatorError(
                _("There is no debtor #{id}.").format(id=debtor_id), title=_("Not found")
            )
        bank_db.save_debtor_address(
            conn,
            debtor_id=debtor_id,
            street=street[:120],
            district=district[:60],
            zip_code=digits,
            city=city[:60],
            state=state,
            actor=actor.name,
        )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.DEBTOR_ADDRESS_SAVED,
            subject=f"debtor:{debtor_id}",
            details={"city": city, "state": state},
        )
