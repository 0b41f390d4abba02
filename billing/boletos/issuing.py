"""Issuing boletos: every pending charge gets its nosso número, barcode, linha digitável
and, when a Pix key is configured, its Pix "copia e cola"; and the PDF of one boleto.

Decisions, so a reader need not rediscover them:

* Set-based and batched. A batch (100,000 charges by default) is claimed in id order
  with one query that also takes its nosso números from ``nosso_numero_seq``, its codes
  are computed with numpy over whole columns (``billing.boletos.codes.issue_codes`` and
  ``pix_codes`` below), COPYed into a temporary table and written with one UPDATE.
  No Python loop runs per charge.
* Each batch is its own transaction. A crash loses at most the batch in flight; the
  next run starts from the charges still pending, and the numbers that batch took are
  skipped, never reused.
* Never issued twice. The UPDATE only touches charges still 'pending' (a charge paid
  or canceled meanwhile keeps its status), 002's constraints say a pending charge has
  no boleto, and its trigger refuses to change a boleto once issued.
* Two issuers at once (the import's, an operator's) take turns batch by batch under
  an advisory lock, so they never compute the same charges and never waste numbers.
* A charge that no barcode can represent (due before 2000-07-03, the first due-date
  factor, or above R$ 99.999.999,99) stays pending and is reported in the log.
* The PDF is drawn on demand from the stored codes, never stored.
"""

from __future__ import annotations

import binascii
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from billing.accounts.access import Actor, Permission, require
from billing.boletos.codes import (
    FIRST_FACTOR_DATE,
    MAX_AMOUNT_CENTS,
    Beneficiary,
    format_nosso_numero,
    issue_codes,
)
from billing.boletos.pdf import boleto_pdf
from billing.boletos.pix import pix_payload
from billing.core.errors import OperatorError
from billing.core.i18n import _
from billing.core.settings import Settings, get_settings
from db import boletos as boletos_db

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100_000
PIX_TXID_PREFIX = "BOLETO"
_PIX_TXID_DIGITS = 15
_MAX_AMOUNT = Decimal(MAX_AMOUNT_CENTS) / 100


def beneficiary_from_settings(settings: Settings) -> Beneficiary:
    """The fund as beneficiário of its boletos; OperatorError when settings are wrong."""
    try:
        return Beneficiary(
            bank_code=settings.bank_code,
            agency=settings.beneficiary_agency,
            account=settings.beneficiary_account,
            account_digit=settings.beneficiary_account_digit,
            wallet=settings.beneficiary_wallet,
            beneficiary_code=settings.beneficiary_code,
            name=settings.beneficiary_name,
            document=settings.beneficiary_document,
            layout=settings.boleto_layout,
            address=settings.beneficiary_address,
        )
    except ValueError as exc:
        raise OperatorError(
            _(
                "The boleto settings are not valid: {error}. "
                "Check BOLETO_LAYOUT, BANK_CODE and the BENEFICIARY_* variables."
            ).format(error=exc),
            title=_("Boleto settings"),
        ) from exc


def pix_txid(nosso_numero: int) -> str:
    """The Pix txid of a boleto: "BOLETO" and its nosso número in 15 digits.

    A payment received by Pix carries it back, so it names the charge it pays.
    """
    return f"{PIX_TXID_PREFIX}{nosso_numero:0{_PIX_TXID_DIGITS}d}"


def issue_boletos(
    engine: Engine,
    *,
    import_id: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    settings: Settings | None = None,
) -> int:
    """Issue every pending charge (only those of `import_id` if given); return how many.

    Running it again issues nothing new; running it twice at once issues each charge once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    settings = settings or get_settings()
    beneficiary = beneficiary_from_settings(settings)
    pix = _PixTemplate.from_settings(settings)
    issued = 0
    after_id = 0
    while True:
        started = time.perf_counter()
        with engine.begin() as conn:
            boletos_db.lock_issuing(conn)
            batch = boletos_db.claim_pending(
                conn,
                after_id=after_id,
                import_id=import_id,
                limit=batch_size,
                first_due_date=FIRST_FACTOR_DATE,
                max_amount=_MAX_AMOUNT,
            )
            if len(batch) == 0:
                break
            claimed = time.perf_counter()
            boletos = _boletos_table(batch, beneficiary=beneficiary, pix=pix)
            computed = time.perf_counter()
            issued += boletos_db.store_issued(conn, boletos=boletos)
            written = time.perf_counter()
        log.debug(
            "batch of %d: claim %.2f s, codes %.2f s, write %.2f s, commit %.2f s",
            len(batch),
            claimed - started,
            computed - claimed,
            written - computed,
            time.perf_counter() - written,
        )
        after_id = int(batch.ids[-1])
        if len(batch) < batch_size:
            break
    _report_unissuable(engine, import_id=import_id)
    log.info("issued %d boletos (import %s)", issued, import_id)
    return issued


def boleto_pdf_download(
    engine: Engine, *, actor: Actor, charge_id: int, settings: Settings | None = None
) -> bytes:
    """The boleto PDF for someone at the dashboard: it carries the payer's whole CPF/CNPJ,
    so it is a file of personal data, for the roles that may export (not viewers)."""
    require(actor, Permission.EXPORT)
    return boleto_pdf_for_charge(engine, charge_id, settings=settings)


def boleto_pdf_for_charge(
    engine: Engine, charge_id: int, *, settings: Settings | None = None
) -> bytes:
    """The printable boleto of an issued charge, drawn now from its stored codes."""
    settings = settings or get_settings()
    charge = boletos_db.charge_for_boleto(engine, charge_id)
    if charge is None:
        raise OperatorError(_("No charge has id {id}.").format(id=charge_id), title=_("Not found"))
    boleto = _stored_boleto(charge)
    beneficiary = beneficiary_from_settings(settings)
    return boleto_pdf(
        beneficiary=beneficiary,
        payer_name=charge["payer_name"],
        payer_document=charge["government_id"],
        payer_email=charge["payer_email"],
        amount=charge["amount"],
        due_date=charge["due_date"],
        issue_date=_local_date(boleto.issued_at, settings.timezone),
        nosso_numero=format_nosso_numero(beneficiary=beneficiary, nosso_numero=boleto.nosso_numero),
        debt_id=charge["debt_id"],
        barcode=boleto.barcode,
        digitable_line=boleto.digitable_line,
        pix_code=charge["pix_code"],
    )


@dataclass(frozen=True)
class _StoredBoleto:
    """The codes of an issued charge, as stored."""

    nosso_numero: int
    barcode: str
    digitable_line: str
    issued_at: datetime


def _stored_boleto(charge: boletos_db.BoletoCharge) -> _StoredBoleto:
    """The charge's boleto; OperatorError when the charge is canceled or has none yet."""
    if charge["status"] == "canceled":
        raise OperatorError(_("This charge was canceled; its boleto must not be paid."))
    nosso_numero, barcode = charge["nosso_numero"], charge["barcode"]
    digitable_line, issued_at = charge["digitable_line"], charge["issued_at"]
    # Stored together or not at all (002's constraint): one missing means no boleto yet.
    if nosso_numero is None or barcode is None or digitable_line is None or issued_at is None:
        raise OperatorError(_("This charge has no boleto yet."))
    return _StoredBoleto(
        nosso_numero=nosso_numero,
        barcode=barcode,
        digitable_line=digitable_line,
        issued_at=issued_at,
    )


def pix_codes(
    *, settings: Settings, amounts_cents: np.ndarray, nosso_numeros: np.ndarray
) -> list[str] | None:
    """The Pix copia-e-cola of many boletos, equal row by row to ``pix_payload`` with
    the charge's amount and ``pix_txid``; None when no Pix key is configured."""
    pix = _PixTemplate.from_settings(settings)
    if pix is None:
        return None
    codes = pix.codes(
        np.asarray(amounts_cents, dtype=np.int64), np.asarray(nosso_numeros, dtype=np.int64)
    )
    return codes.to_pylist()


# --------------------------------------------------------------------------
# One batch
# --------------------------------------------------------------------------


def _boletos_table(
    batch: boletos_db.PendingBatch, *, beneficiary: Beneficiary, pix: _PixTemplate | None
) -> pa.Table:
    barcodes, lines = issue_codes(
        beneficiary=beneficiary,
        nosso_numeros=batch.nosso_numeros,
        amounts_cents=batch.amounts_cents,
        due_dates=batch.due_dates,
    )
    n = len(batch)
    return pa.table(
        {
            "id": pa.array(batch.ids),
            "nosso_numero": pa.array(batch.nosso_numeros),
            "barcode": _fixed_width_strings(barcodes),
            "digitable_line": _fixed_width_strings(lines),
            "pix_code": (
                pix.codes(batch.amounts_cents, batch.nosso_numeros)
                if pix is not None
                else pa.nulls(n, pa.string())
            ),
        }
    )


def _fixed_width_strings(values: np.ndarray) -> pa.StringArray:
    """An Arrow string array from a numpy array of ASCII strings that all fill its width.

    Built from the bytes directly: ``pa.array`` on numpy strings goes through Python
    objects and costs seconds per million rows.
    """
    width = values.dtype.itemsize // 4  # numpy stores str as UCS-4
    chars = np.ascontiguousarray(values).view(np.uint32).astype(np.uint8)
    if chars.size != values.shape[0] * width or not chars.all():
        raise ValueError("expected ASCII strings that all have the array's full width")
    return _strings_from_matrix(chars.reshape(-1, width))


def _strings_from_matrix(chars: np.ndarray) -> pa.StringArray:
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))
    )


def _report_unissuable(engine: Engine, *, import_id: int | None) -> None:
    with engine.connect() as conn:
        left = boletos_db.count_unissuable(
            conn, import_id=import_id, first_due_date=FIRST_FACTOR_DATE, max_amount=_MAX_AMOUNT
        )
    if left:
        log.warning(
            "%d pending charges (import %s) cannot get a boleto: due before %s or above %s",
            left,
            import_id,
            FIRST_FACTOR_DATE.isoformat(),
            _MAX_AMOUNT,
        )


def _local_date(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


# --------------------------------------------------------------------------
# Pix codes for many boletos at once
# --------------------------------------------------------------------------

_CRC_TABLE = np.array([binascii.crc_hqx(bytes([i]), 0) for i in range(256)], dtype=np.int64)
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_AMOUNT_WIDTH = 13  # "9999999999.99", the longest amount a BR Code holds
_POWERS_OF_TEN = 10 ** np.arange(1, _AMOUNT_WIDTH - 3, dtype=np.int64)
_TXID_SAMPLE_NUMBER = 1


def _crc_step(state: np.ndarray, column: np.ndarray | np.int64) -> np.ndarray:
    """CRC16-CCITT-FALSE state after one more byte per row (table-driven)."""
    return ((state << 8) & 0xFFFF) ^ _CRC_TABLE[(state >> 8) ^ column]


def _crc_jump(text: str) -> np.ndarray:
    """For each of the 65536 CRC states, the state after `text`: a constant run of
    bytes then costs one table look-up per row instead of one step per byte."""
    state = np.arange(65536, dtype=np.int64)
    for byte in text.encode("ascii"):
        state = _crc_step(state, np.int64(byte))
    return state


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII matrix of zero-padded decimal digits."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    rest = values.copy()
    for column in range(width - 1, -1, -1):
        out[:, column] = rest % 10 + ord("0")
        rest //= 10
    return out


class _PixTemplate:
    """A static BR Code split where it varies from boleto to boleto.

    Every payload is ``head + "54" + LL + amount + middle + txid digits + "6304" + CRC``;
    everything but the amount, its length and the nosso número is the same for all
    boletos of one configuration. The constant parts are taken from a payload that
    ``pix_payload`` itself builds, so both always agree.
    """

    def __init__(self, *, key: str, merchant_name: str, merchant_city: str) -> None:
        sample = pix_payload(
            key=key,
            merchant_name=merchant_name,
            merchant_city=merchant_city,
            amount=None,
            txid=pix_txid(_TXID_SAMPLE_NUMBER),
        )
        split = _field_offset(sample, "58")  # the amount (54) goes right before 58
        txid_digits_at = len(sample) - 8 - _PIX_TXID_DIGITS
        self.head = sample[:split]
        self.middle = sample[split:txid_digits_at]
        self._head_crc = binascii.crc_hqx(self.head.encode("ascii"), 0xFFFF)
        self._after_middle = _crc_jump(self.middle)
        self._after_crc_tag = _crc_jump("6304")

    @classmethod
    def from_settings(cls, settings: Settings) -> _PixTemplate | None:
        if not settings.pix_key:
            return None
        try:
            return cls(
                key=settings.pix_key,
                merchant_name=settings.pix_merchant_name or settings.beneficiary_name,
                merchant_city=settings.pix_merchant_city,
            )
        except ValueError as exc:
            raise OperatorError(
                _(
                    "The Pix settings are not valid: {error}. "
                    "Check PIX_KEY, PIX_MERCHANT_NAME and PIX_MERCHANT_CITY."
                ).format(error=exc),
                title=_("Pix settings"),
            ) from exc

    def codes(self, amounts_cents: np.ndarray, nosso_numeros: np.ndarray) -> pa.StringArray:
        n = amounts_cents.shape[0]
        if n and (amounts_cents.min() < 1 or amounts_cents.max() >= 10 ** (_AMOUNT_WIDTH - 1)):
            raise ValueError("a Pix amount must be between R$ 0,01 and R$ 9.999.999.999,99")
        if n and (nosso_numeros.min() < 0 or nosso_numeros.max() >= 10**_PIX_TXID_DIGITS):
            raise ValueError(f"a nosso número for a Pix txid has at most {_PIX_TXID_DIGITS} digits")
        amount, amount_length = _amount_texts(amounts_cents)
        length_digits = _digits(amount_length, 2)
        txid_digits = _digits(nosso_numeros, _PIX_TXID_DIGITS)

        state = np.full(n, self._head_crc, dtype=np.int64)
        for byte in b"54":
            state = _crc_step(state, np.int64(byte))
        for column in range(2):
            state = _crc_step(state, length_digits[:, column])
        first_column = _AMOUNT_WIDTH - amount_length
        for column in range(_AMOUNT_WIDTH):
            active = column >= first_column
            state = np.where(active, _crc_step(state, amount[:, column]), state)
        state = self._after_middle[state]
        for column in range(_PIX_TXID_DIGITS):
            state = _crc_step(state, txid_digits[:, column])
        state = self._after_crc_tag[state]
        crc = _HEX[(state[:, None] >> np.array([12, 8, 4, 0])) & 0xF]

        # Variable-length amounts: their characters row after row, with offsets.
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(amount_length, out=offsets[1:])
        amount_text = pa.StringArray.from_buffers(
            n,
            pa.py_buffer(offsets),
            pa.py_buffer(amount[np.arange(_AMOUNT_WIDTH) >= first_column[:, None]]),
        )
        return pc.binary_join_element_wise(
            self.head + "54",
            _strings_from_matrix(length_digits),
            amount_text,
            self.middle,
            _strings_from_matrix(txid_digits),
            "6304",
            _strings_from_matrix(crc),
            "",
        )


def _amount_texts(amounts_cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as "1234.56" (no leading zeros), right-aligned in an (n, 13) ASCII
    matrix, and the length of each: row i's text is its last ``length[i]`` columns."""
    digits = _digits(amounts_cents, _AMOUNT_WIDTH - 1)
    text = np.empty((amounts_cents.shape[0], _AMOUNT_WIDTH), dtype=np.uint8)
    text[:, :-3] = digits[:, :-2]
    text[:, -3] = ord(".")
    text[:, -2:] = digits[:, -2:]
    reais_width = 1 + np.searchsorted(_POWERS_OF_TEN, amounts_cents // 100, side="right")
    return text, reais_width + 3


def _field_offset(payload: str, tag: str) -> int:
    """Where top-level BR Code field `tag` starts in `payload`."""
    position = 0
    while position < len(payload):
        if payload[position : position + 2] == tag:
            return position
        position += 4 + int(payload[position + 2 : position + 4])
    raise ValueError(f"BR Code has no field {tag}")


# --------------------------------------------------------------------------
# Boletos for charges being imported (born issued, in the import's transaction)
# --------------------------------------------------------------------------


def issuable(rows: pa.Table) -> pa.BooleanArray:
    """Which rows (columns amount, due_date) a barcode can represent."""
    return pc.and_(
        pc.greater_equal(rows.column("due_date"), pa.scalar(FIRST_FACTOR_DATE, pa.date32())),
        pc.less_equal(rows.column("amount"), pa.scalar(_MAX_AMOUNT, pa.decimal128(14, 2))),
    ).combine_chunks()


def boletos_for_rows(
    rows: pa.Table, *, nosso_numeros: np.ndarray, settings: Settings | None = None
) -> pa.Table:
    """The boletos of not-yet-stored charges (columns line, amount, due_date), one number
    each, in order: columns line, nosso_numero, barcode, digitable_line, pix_code."""
    settings = settings or get_settings()
    cents = pc.cast(
        pc.multiply(rows.column("amount"), pa.scalar(Decimal(100), pa.decimal128(3, 0))),
        pa.int64(),
    )
    batch = boletos_db.PendingBatch(
        ids=rows.column("line").to_numpy().astype(np.int64),
        amounts_cents=cents.to_numpy(),
        due_dates=rows.column("due_date").to_numpy().astype("datetime64[D]"),
        nosso_numeros=nosso_numeros,
    )
    table = _boletos_table(
        batch,
        beneficiary=beneficiary_from_settings(settings),
        pix=_PixTemplate.from_settings(settings),
    )
    return table.rename_columns(["line", *table.column_names[1:]])
