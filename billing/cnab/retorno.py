"""Reading a CNAB 240 retorno: the bank's report on each boleto, checked whole before
anything is applied.

`read_retorno` returns every T/U pair as a `RetornoEntry`, or refuses the file with one
sentence (FileRefused) when it is not a CNAB 240 retorno of the configured bank and
beneficiary: empty or binary, a line that is not 240 characters, no file header or
trailer, a remessa instead of a retorno, another bank's or beneficiary's file, counts in
the trailers that do not match the lines (a file cut short), a T without its U, a
number or a date that is not one. Segments other than T and U (Y, for instance) are
counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.boletos.codes import BANK_NAMES, LAYOUT_CAIXA_SIGCB, Beneficiary
from billing.cnab.layouts import LINE_WIDTH, BankLayout, RecordLayout
from billing.cnab.remessa import REMESSA, RETORNO
from billing.core.errors import FileRefused
from billing.core.i18n import _

_EOF_MARK = "\x1a"  # some bank software ends a file with Ctrl-Z
_ZERO_DATE = "00000000"


@dataclass(frozen=True)
class RetornoEntry:
    """One title reported: a segment T and its U."""

    line: int  # of the T, 1-based
    movement: str  # occurrence code, C044
    nosso_numero: str  # as the file writes it
    sequence: int | None  # our nosso número's sequence; None when it is not one of ours
    document_number: str
    amount: Decimal
    due_date: date | None
    payer_name: str
    fee: Decimal
    reasons: str
    interest_fine: Decimal
    discount: Decimal
    rebate: Decimal
    paid_amount: Decimal
    credited_amount: Decimal
    other_expenses: Decimal
    other_credits: Decimal
    occurred_on: date | None
    credited_on: date | None


@dataclass(frozen=True)
class Retorno:
    bank_code: str
    nsa: int
    generated_on: date | None
    records: int
    entries: list[RetornoEntry]
    skipped_segments: int


def read_retorno(data: bytes, *, layout: BankLayout, beneficiary: Beneficiary) -> Retorno:
    """The entries of a retorno of `layout`'s bank for `beneficiary`, or FileRefused."""
    lines = _lines(data)
    header = _header(lines[0], layout, beneficiary)
    _check_file_trailer(lines, layout)
    entries: list[RetornoEntry] = []
    skipped = 0
    batch_start: int | None = None
    index = 1
    last = len(lines) - 1
    while index < last:
        line = lines[index]
        kind = line[7]
        number = index + 1
        if kind == "1":
            if batch_start is not None:
                raise _refused(
                    _(
                        "Line {number} opens a batch before the one of line {start} is closed."
                    ).format(number=number, start=batch_start + 1)
                )
            if line[8] != "T":
                raise _refused(
                    _(
                        "The batch of line {number} is not a retorno's (operation {operation}, "
                        "expected 'T')."
                    ).format(number=number, operation=repr(line[8]))
                )
            batch_start = index
        elif kind == "3":
            if batch_start is None:
                raise _refused(
                    _("Line {number} is a detail record outside any batch.").format(number=number)
                )
            segment = line[13]
            if segment == "T":
                if index + 1 >= last or lines[index + 1][7:8] != "3" or lines[index + 1][13] != "U":
                    raise _refused(
                        _("The segment T of line {number} has no segment U after it.").format(
                            number=number
                        )
                    )
                entries.append(_entry(number, line, lines[index + 1], layout, beneficiary))
                index += 1
            elif segment == "U":
                raise _refused(
                    _("The segment U of line {number} has no segment T before it.").format(
                        number=number
                    )
                )
            else:
                skipped += 1
        elif kind == "5":
            if batch_start is None:
                raise _refused(
                    _("Line {number} closes a batch that was never opened.").format(number=number)
                )
            declared = _integer(line, layout.batch_trailer, "record_count", number)
            if declared != index - batch_start + 1:
                raise _refused(
                    _(
                        "The batch trailer of line {number} counts {declared} records, but the "
                        "batch has {records}: the file is incomplete or altered."
                    ).format(number=number, declared=declared, records=index - batch_start + 1)
                )
            batch_start = None
        else:
            raise _refused(
                _(
                    "Line {number} has record type {kind}, which a CNAB 240 retorno does not have."
                ).format(number=number, kind=repr(kind))
            )
        index += 1
    if batch_start is not None:
        raise _refused(
            _("The batch opened on line {line} has no trailer.").format(line=batch_start + 1)
        )
    return Retorno(
        bank_code=layout.bank_code,
        nsa=header["nsa"],
        generated_on=header["generated_on"],
        records=len(lines),
        entries=entries,
        skipped_segments=skipped,
    )


def _lines(data: bytes) -> list[str]:
    if not data.strip():
        raise _refused(_("The file is empty."))
    if b"\x00" in data:
        raise _refused(_("The file is binary, not a CNAB 240 text file."))
    text = data.decode("latin-1").rstrip("\r\n" + _EOF_MARK)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    for number, line in enumerate(lines, start=1):
        if len(line) != LINE_WIDTH:
            raise _refused(
                _(
                    "Line {number} has {length} characters; every line of a CNAB 240 file "
                    "has {width}, so this is not a CNAB 240 retorno."
                ).format(number=number, length=len(line), width=LINE_WIDTH)
            )
    if len(lines) < 2:
        raise _refused(_("The file has a single line; a retorno has a header and a trailer."))
    return lines


def _header(line: str, layout: BankLayout, beneficiary: Beneficiary) -> dict:
    if line[3:8] != "00000":
        raise _refused(_("The first line is not a CNAB 240 file header."))
    bank = line[0:3]
    if bank != layout.bank_code:
        message = (
            _(
                "This file is from bank {bank} ({name}), but the configured bank is "
                "{configured} ({configured_name}) (BANK_CODE)."
            )
            if bank in BANK_NAMES
            else _(
                "This file is from bank {bank} (unknown), but the configured bank is "
                "{configured} ({configured_name}) (BANK_CODE)."
            )
        )
        raise _refused(
            message.format(
                bank=bank,
                name=BANK_NAMES.get(bank),
                configured=layout.bank_code,
                configured_name=layout.bank_name,
            )
        )
    fields = layout.file_header.read(line)
    if fields["file_kind"] == REMESSA:
        raise _refused(_("This is a remessa (a file sent to the bank), not a retorno."))
    if fields["file_kind"] != RETORNO:
        raise _refused(_("The file header says neither remessa nor retorno (position 143)."))
    ours = beneficiary.beneficiary_code
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        theirs = fields["beneficiary_code"]
        same = theirs == ours
    else:
        theirs = fields["convenio"].lstrip("0")
        same = theirs == ours.lstrip("0")
    if not same:
        raise _refused(
            _(
                "This retorno is for beneficiary {theirs}, not this fund's {ours} "
                "(BENEFICIARY_CODE)."
            ).format(theirs=theirs, ours=ours)
        )
    return {
        "nsa": _integer(line, layout.file_header, "nsa", 1),
        "generated_on": _date(line, layout.file_header, "generated_on", 1),
    }


def _check_file_trailer(lines: list[str], layout: BankLayout) -> None:
    trailer = lines[-1]
    if trailer[3:8] != "99999":
        raise _refused(_("The last line is not a CNAB 240 file trailer: the file is incomplete."))
    declared = _integer(trailer, layout.file_trailer, "record_count", len(lines))
    if declared != len(lines):
        raise _refused(
            _(
                "The file trailer counts {declared} records, but the file has {lines} "
                "lines: it is incomplete or altered."
            ).format(declared=declared, lines=len(lines))
        )


def _entry(
    number: int, t_line: str, u_line: str, layout: BankLayout, beneficiary: Beneficiary
) -> RetornoEntry:
    t = layout.segment_t.read(t_line)
    u = layout.segment_u.read(u_line)
    if t["movement"] != u["movement"]:
        raise _refused(
            _("The segments T and U of line {number} report different occurrences.").format(
                number=number
            )
        )
    money = {
        name: _money(u_line, layout.segment_u, name, number + 1)
        for name in (
            "interest_fine", "discount", "rebate", "paid_amount", "credited_amount",
            "other_expenses", "other_credits",
        )
    }  # fmt: skip
    nosso_numero, sequence = _nosso_numero(t, beneficiary)
    return RetornoEntry(
        line=number,
        movement=t["movement"],
        nosso_numero=nosso_numero,
        sequence=sequence,
        document_number=t["document_number"],
        amount=_money(t_line, layout.segment_t, "amount", number),
        due_date=_date(t_line, layout.segment_t, "due_date", number),
        payer_name=t["payer_name"],
        fee=_money(t_line, layout.segment_t, "fee", number),
        reasons=t["reasons"],
        occurred_on=_date(u_line, layout.segment_u, "occurred_on", number + 1),
        credited_on=_date(u_line, layout.segment_u, "credited_on", number + 1),
        **money,
    )


def _nosso_numero(t: dict[str, str], beneficiary: Beneficiary) -> tuple[str, int | None]:
    """The nosso número as written, and our sequence when it is one of this fund's."""
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        text = t["nosso_numero_modality"] + t["nosso_numero"]
        ours = t["nosso_numero_modality"] in ("14", "24") and t["nosso_numero"].isdigit()
        return text, int(t["nosso_numero"]) if ours else None
    text = t["nosso_numero"].strip()
    convenio = beneficiary.beneficiary_code
    ours = len(text) == 17 and text.isdigit() and text.startswith(convenio)
    return text, int(text[7:]) if ours else None


def _integer(line: str, layout: RecordLayout, name: str, number: int) -> int:
    item = layout[name]
    text = line[item.slice]
    if not text.isdigit():
        raise _refused(
            _("Line {number}: {text} in positions {start}-{end} ({name}) is not a number.").format(
                number=number, text=repr(text), start=item.start, end=item.end, name=name
            )
        )
    return int(text)


def _money(line: str, layout: RecordLayout, name: str, number: int) -> Decimal:
    return Decimal(_integer(line, layout, name, number)).scaleb(-2)  # cents, two decimals


def _date(line: str, layout: RecordLayout, name: str, number: int) -> date | None:
    item = layout[name]
    text = line[item.slice]
    if text.strip() in ("", _ZERO_DATE):
        return None
    try:
        if not text.isdigit():
            raise ValueError(text)
        return date(int(text[4:8]), int(text[2:4]), int(text[0:2]))
    except ValueError as exc:
        raise _refused(
            _(
                "Line {number}: {text} in positions {start}-{end} ({name}) is not "
                "a date (DDMMAAAA)."
            ).format(number=number, text=repr(text), start=item.start, end=item.end, name=name)
        ) from exc


def _refused(message: str) -> FileRefused:
    """A refusal of the retorno; `message` already in the operator's language."""
    return FileRefused(message, title=_("Retorno refused"))
