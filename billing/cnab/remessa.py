"""Writing a CNAB 240 remessa: file header, one batch of P/Q(/R) registrations and P
write-off requests, trailers with their counts and sums, a line at a time.

Pure formatting, no database: `RemessaWriter` takes one charge at a time (a tuple of
text in the order of TITLE_COLUMNS, as db.bank_files streams them) and writes its lines
to a sink as soon as they are made, so a remessa of any size needs the memory of two
groups of lines, never of the file. A title's segments P, Q and R are written by one
function compiled from the layout's tables when the writer is made (constants rendered
once, one format spec per variable field). The sink also hashes the bytes and
compresses them, for the copy the database keeps.

Lines are 240 ASCII characters ended by CR LF, the way bank software writes them.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, BinaryIO

from billing.boletos.codes import (
    LAYOUT_CAIXA_SIGCB,
    SIGCB_ISSUED_BY_BENEFICIARY,
    SIGCB_REGISTERED,
    Beneficiary,
)
from billing.cnab.layouts import (
    LINE_WIDTH,
    MAX_BATCH_RECORDS,
    MOVEMENT_REGISTER,
    MOVEMENT_WRITE_OFF,
    BankLayout,
    RecordLayout,
    compile_lines,
)

LINE_END = b"\r\n"
REMESSA, RETORNO = "1", "2"  # file header position 143
_FLUSH_CHUNKS = 2048  # titles (up to 3 lines each) written to the file at once
_NOT_PRINTABLE = re.compile(r"[^ -~]")


def cnab_text(value: object) -> str:
    """Text as banks read it: ASCII upper case, accents dropped ("Conceição" ->
    "CONCEICAO"), anything else unprintable turned into a space."""
    text = str(value or "")
    if text.isascii() and text.isprintable():  # most names: nothing to drop or replace
        return text.upper()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_PRINTABLE.sub(" ", text.upper())


def document_type(government_id: str) -> str:
    """FEBRABAN's tipo de inscrição: 1 CPF (11 characters), 2 CNPJ (14)."""
    return "1" if len(government_id) == 11 else "2"


@dataclass(frozen=True)
class RemessaTerms:
    """What the remessa asks the bank to apply to every boleto (settings BANK_*)."""

    fine_percent: Decimal = Decimal("2.00")
    interest_monthly_percent: Decimal = Decimal("1.00")
    discount_percent: Decimal = Decimal("0")
    discount_days: int = 0

    @property
    def has_fine(self) -> bool:
        return self.fine_percent > 0

    def segments_per_registration(self) -> int:
        """P and Q always; R only to carry a fine (its other fields would be empty)."""
        return 3 if self.has_fine else 2


def records_per_item(kind: str, terms: RemessaTerms) -> int:
    return terms.segments_per_registration() if kind == "registration" else 1


@dataclass(frozen=True)
class RemessaTotals:
    """What a finished file holds: counts, the sum of its titles, size, sha256, and
    the file zlib-compressed (what the database keeps)."""

    registrations: int
    write_offs: int
    without_address: int  # registrations whose segment Q went out with no address
    records: int  # every line, headers and trailers included
    total_amount: Decimal
    size_bytes: int
    sha256: str
    compressed: bytes


class _Sink:
    """Lines out to the file, the hash and the compressor together, in groups. Each group
    is hashed, compressed and written by a thread of its own while the next one is being
    formatted (zlib, hashlib and file writes let go of the GIL: a second core does them);
    one group at a time, so memory holds two groups at most, whatever the file's size."""

    def __init__(self, out: BinaryIO | None) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.compressor = zlib.compressobj(1)  # fast: the text is mostly spaces and zeros
        self.compressed: list[bytes] = []
        self.size = 0
        self.pending: list[str] = []
        self._worker: threading.Thread | None = None
        self._failure: BaseException | None = None

    def line(self, text: str) -> None:
        self.write(text + "\r\n")

    def write(self, text: str) -> None:
        """Whole lines, each ended by CR LF."""
        self.pending.append(text)
        if len(self.pending) >= _FLUSH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        data = "".join(self.pending).encode("ascii")
        self.pending.clear()
        self._wait()
        self._worker = threading.Thread(target=self._absorb, args=(data,), daemon=True)
        self._worker.start()

    def close(self) -> bytes:
        self.flush()
        self._wait()
        self.compressed.append(self.compressor.flush())
        return b"".join(self.compressed)

    def _absorb(self, data: bytes) -> None:
        try:
            self.size += len(data)
            self.digest.update(data)
            self.compressed.append(self.compressor.compress(data))
            if self.out is not None:
                self.out.write(data)
        except BaseException as exc:  # raised again in the writer's thread by _wait
            self._failure = exc

    def _wait(self) -> None:
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._failure is not None:
            raise self._failure


class RemessaWriter:
    """One remessa file: `registration(...)` and `write_off(...)` per charge, then
    `finish()`. The header is written when the writer is made."""

    def __init__(
        self,
        *,
        layout: BankLayout,
        beneficiary: Beneficiary,
        terms: RemessaTerms,
        nsa: int,
        generated_at: datetime,
        out: BinaryIO | None,
        wallet_variation: str = "019",
    ) -> None:
        if not 1 <= nsa <= 999_999:
            raise ValueError(f"the NSA must be between 1 and 999999, not {nsa}")
        self.layout = layout
        self.terms = terms
        self._sink = _Sink(out)
        self._details = 0
        self._registrations = 0
        self._write_offs = 0
        self._without_address = 0
        self._titles_cents = 0
        self._registration_records = terms.segments_per_registration()
        account = account_values(layout, beneficiary, wallet_variation)
        self._bb = beneficiary.layout != LAYOUT_CAIXA_SIGCB
        self._convenio = beneficiary.beneficiary_code
        day = generated_at.strftime("%d%m%Y")
        header = {
            **account,
            "file_kind": REMESSA,
            "generated_on": day,
            "generated_time": generated_at.strftime("%H%M%S"),
            "nsa": nsa,
            "company_reserved": "REMESSA-PRODUCAO" if not self._bb else "",
        }
        batch_values = {
            **account,
            "batch": 1,
            "operation": "R",
            "file_number": nsa,
            "recorded_on": day,
        }
        self._sink.line(layout.file_header.write(header))
        self._sink.line(layout.batch_header.write(batch_values))
        title_constants = {
            key: value for key, value in account.items() if key in layout.segment_p.variable_names
        }
        title_constants.update(batch=1, species=layout.species, **_terms_constants(terms))
        if layout.write_off_days is not None:  # BB fixes it in the table (zeros)
            title_constants["write_off_days"] = layout.write_off_days
        if not self._bb:
            modality = SIGCB_REGISTERED + SIGCB_ISSUED_BY_BENEFICIARY
            title_constants["nosso_numero_modality"] = modality
        else:
            title_constants["wallet_code"] = "7" if beneficiary.wallet == "17" else "1"
        p_constants = _only(layout.segment_p, title_constants)
        qr_constants = {"bank_code": layout.bank_code, "batch": 1}
        r_constants = {**qr_constants, "fine_code": "2",
                       "fine_amount": _hundredths(terms.fine_percent)}  # fmt: skip
        # Segments P, Q (and R) of a registration written by one compiled function from
        # one tuple of values (_TITLE order); a write-off request is a P on its own.
        records: list[tuple[RecordLayout, Mapping[str, Any], Mapping[str, int] | None]] = [
            (layout.segment_p, p_constants, _P_POSITIONS),
            (layout.segment_q, qr_constants, _Q_POSITIONS),
        ]
        if terms.has_fine:
            records.append((layout.segment_r, r_constants, _R_POSITIONS))
        self._registration_records_layouts = records
        self._registration = compile_lines(records)
        self._write_off_records = records[:1]
        self._write_off = compile_lines(self._write_off_records)

    @property
    def detail_records(self) -> int:
        return self._details

    def room_for(self, kind: str) -> bool:
        """Whether one more item of `kind` fits in the batch (99,999 detail records)."""
        return self._details + records_per_item(kind, self.terms) <= MAX_BATCH_RECORDS

    def registration(self, charge: Sequence[Any]) -> None:
        """P, Q and (with a fine) R asking the bank to register `charge`'s boleto;
        `charge` holds the values of TITLE_COLUMNS, in that order, as text."""
        (_, charge_id, debt_id, nosso_numero, due_date, amount, issued_on, day_after_due,
         interest_per_day, discount_date, discount_amount, document, payer_name, street,
         district, zip_code, city, state) = charge  # fmt: skip
        sequence = self._next_sequence(self._registration_records)
        if not zip_code:
            address: tuple[str, ...] = _NO_ADDRESS
            self._without_address += 1
        else:
            address = (cnab_text(street), cnab_text(district), zip_code[:5], zip_code[5:],
                       cnab_text(city), state)  # fmt: skip
        values = (
            sequence, sequence + 1, sequence + 2, MOVEMENT_REGISTER, self._number(nosso_numero),
            charge_id, due_date, amount, issued_on, day_after_due, interest_per_day,
            discount_date, discount_amount, cnab_text(debt_id),
            "1" if len(document) == 11 else "2", document, cnab_text(payer_name), *address,
        )  # fmt: skip
        self._sink.write(self._text(self._registration, self._registration_records_layouts,
                                    values))  # fmt: skip
        self._details += self._registration_records
        self._registrations += 1
        self._titles_cents += int(amount)

    def write_off(self, charge: Sequence[Any]) -> None:
        """A P asking the bank to write off (baixar) `charge`'s boleto."""
        (_, charge_id, debt_id, nosso_numero, due_date, amount, issued_on, day_after_due,
         interest_per_day, discount_date, discount_amount, *_rest) = charge  # fmt: skip
        sequence = self._next_sequence(1)
        values = (
            sequence, 0, 0, MOVEMENT_WRITE_OFF, self._number(nosso_numero), charge_id,
            due_date, amount, issued_on, day_after_due, interest_per_day, discount_date,
            discount_amount, cnab_text(debt_id),
        )  # fmt: skip
        self._sink.write(self._text(self._write_off, self._write_off_records, values))
        self._details += 1
        self._write_offs += 1
        self._titles_cents += int(amount)

    def finish(self) -> RemessaTotals:
        """The trailers, with the counts and the sum; the file is complete after this."""
        titles = self._registrations + self._write_offs
        batch_trailer = {
            "bank_code": self.layout.bank_code,
            "batch": 1,
            "record_count": self._details + 2,
            "simple_count": titles,
            "simple_amount": self._titles_cents,
        }
        file_trailer = {
            "bank_code": self.layout.bank_code,
            "batch_count": 1,
            "record_count": self._details + 4,
        }
        self._sink.line(self.layout.batch_trailer.write(batch_trailer))
        self._sink.line(self.layout.file_trailer.write(file_trailer))
        compressed = self._sink.close()
        return RemessaTotals(
            registrations=self._registrations,
            write_offs=self._write_offs,
            without_address=self._without_address,
            records=self._details + 4,
            total_amount=Decimal(self._titles_cents) / 100,
            size_bytes=self._sink.size,
            sha256=self._sink.digest.hexdigest(),
            compressed=compressed,
        )

    def _next_sequence(self, records: int) -> int:
        if self._details + records > MAX_BATCH_RECORDS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_RECORDS} detail records")
        return self._details + 1

    def _number(self, nosso_numero: str) -> str:
        """The nosso número as segment P holds it: BB's is convênio + 10-digit sequence."""
        return f"{self._convenio}{nosso_numero:0>10}" if self._bb else nosso_numero

    @staticmethod
    def _text(
        render: Callable[[Any], str],
        records: list[tuple[RecordLayout, Mapping[str, Any], Mapping[str, int] | None]],
        values: tuple[Any, ...],
    ) -> str:
        text = render(values)
        if len(text) != (LINE_WIDTH + 2) * len(records):  # a value wider than its field
            for record, constants, positions in records:
                named = {name: values[index] for name, index in (positions or {}).items()}
                record.compile(constants).line(named)  # raises, naming the field
            raise ValueError(f"a line of the remessa is not {LINE_WIDTH} characters long")
        return text


# The values of a title, in the order the compiled segments read them: named as the
# fields of segment P and Q, with Q's and R's own sequences.
_TITLE = (
    "sequence", "q_sequence", "r_sequence", "movement", "nosso_numero", "document_number",
    "due_date", "amount", "issued_on", "interest_date", "interest_amount", "discount_date",
    "discount_amount", "company_reference", "payer_document_type", "payer_document",
    "payer_name", "payer_address", "payer_district", "payer_zip", "payer_zip_suffix",
    "payer_city", "payer_state",
)  # fmt: skip
_AT = {name: index for index, name in enumerate(_TITLE)}
_P_POSITIONS = {name: _AT[name] for name in _TITLE[:14] if name not in ("q_sequence",
                                                                         "r_sequence")}  # fmt: skip
_Q_POSITIONS = {**{name: _AT[name] for name in _TITLE[14:]}, "sequence": _AT["q_sequence"],
                "movement": _AT["movement"]}  # fmt: skip
_R_POSITIONS = {
    "sequence": _AT["r_sequence"],
    "movement": _AT["movement"],
    "fine_date": _AT["interest_date"],
}  # the fine from the day after the due date

# The columns of each charge a remessa carries, in the order `registration` and
# `write_off` take them (db.bank_files streams them so).
TITLE_COLUMNS = (
    "kind", "id", "debt_id", "nosso_numero", "due_date", "amount", "issued_on",
    "day_after_due", "interest_per_day", "discount_date", "discount_amount",
    "payer_document", "payer_name", "payer_address", "payer_district", "payer_zip",
    "payer_city", "payer_state",
)  # fmt: skip


# A debtor with no address stored (debtor_addresses; the debtor file carries none): the
# fields go out empty, and the remessa counts the charges that did (see README).
_NO_ADDRESS = ("", "", "0", "0", "", "")  # street, district, CEP, suffix, city, UF


def account_values(
    layout: BankLayout, beneficiary: Beneficiary, wallet_variation: str
) -> dict[str, Any]:
    """The fund's identification, as the headers and segment P hold it."""
    document = "".join(ch for ch in beneficiary.document if ch.isalnum()).upper()
    values: dict[str, Any] = {
        "bank_code": layout.bank_code,
        "company_document_type": document_type(document),
        "company_document": document,
        "company_name": cnab_text(beneficiary.name),
        "agency": beneficiary.agency,
        "agency_digit": beneficiary.agency_digit or "0",
    }
    if beneficiary.layout == LAYOUT_CAIXA_SIGCB:
        values["beneficiary_code"] = beneficiary.beneficiary_code
        values["agreement_code"] = beneficiary.beneficiary_code
    else:
        values.update(
            convenio=beneficiary.beneficiary_code,
            wallet=beneficiary.wallet,
            wallet_variation=wallet_variation,
            test_flag="",
            account=beneficiary.account,
            account_digit=beneficiary.account_digit,
        )
    return values


def _terms_constants(terms: RemessaTerms) -> dict[str, Any]:
    """Interest and discount fields fixed for the whole file when they are off."""
    constants: dict[str, Any] = {}
    if terms.interest_monthly_percent > 0:
        constants["interest_code"] = "1"  # valor por dia
    else:
        constants.update(interest_code="3", interest_date=0, interest_amount=0)  # isento
    if terms.discount_percent > 0:
        constants["discount_code"] = "1"  # valor fixo até a data informada
    else:
        constants.update(discount_code="0", discount_date=0, discount_amount=0)
    return constants


def _hundredths(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def _only(layout: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {item.name for item in layout.fields}
    return {key: value for key, value in values.items() if key in names}
