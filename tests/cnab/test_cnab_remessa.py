"""The remessa: every line against the layouts' published positions, counts and sums in
the trailers, the NSA, each charge sent once, write-off requests, byte-for-byte copies."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from billing.accounts.access import Forbidden
from billing.cnab import layouts
from billing.cnab.layouts import (
    BANK_LAYOUTS,
    BB_CONVENIO7,
    CAIXA_SIGCB,
    LINE_WIDTH,
    MAX_BATCH_RECORDS,
    RecordLayout,
)
from billing.cnab.remessa import RemessaTerms, cnab_text
from billing.cnab.service import (
    generate_remessa,
    plan_files,
    remessa_download,
    remessa_history,
)
from billing.core.settings import Settings, get_settings
from billing.payments.service import cancel_charge
from tests.support.actors import OPERATOR, VIEWER
from tests.support.cnab_bank import bank_tables, bb_settings  # noqa: F401 (bank_tables: fixture)
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, run_import, sample_rows

GENERATED = datetime(2024, 5, 2, 9, 30, 15, tzinfo=ZoneInfo("America/Sao_Paulo"))
ALL_RECORDS = [value for value in vars(layouts).values() if isinstance(value, RecordLayout)]


def lines_of(data: bytes) -> list[str]:
    assert data.endswith(b"\r\n")
    lines = data.decode("ascii").split("\r\n")[:-1]
    assert all(len(line) == LINE_WIDTH for line in lines)
    return lines


def field(line: str, start: int, end: int) -> str:
    """Positions start..end, 1-based and inclusive, as the manuals number them."""
    return line[start - 1 : end]


# --- The tables --------------------------------------------------------------------------


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda record: record.name)
def test_every_record_covers_positions_1_to_240_once(record: RecordLayout) -> None:
    covered = [p for item in record.fields for p in range(item.start, item.end + 1)]
    assert covered == list(range(1, LINE_WIDTH + 1))
    assert {item.kind for item in record.fields} <= {"N", "A", "D"}


# The published positions of the fields that carry money, identity and counts, written
# here apart from the tables (FEBRABAN v10; CAIXA SIGCB; BB convênio 7).
PUBLISHED = [
    ("file_header", "file_kind", 143, 143),
    ("file_header", "generated_on", 144, 151),
    ("file_header", "generated_time", 152, 157),
    ("file_header", "nsa", 158, 163),
    ("file_header", "company_document", 19, 32),
    ("file_header", "company_name", 73, 102),
    ("batch_header", "operation", 9, 9),
    ("batch_header", "file_number", 184, 191),
    ("segment_p", "movement", 16, 17),
    ("segment_p", "sequence", 9, 13),
    ("segment_p", "due_date", 78, 85),
    ("segment_p", "amount", 86, 100),
    ("segment_p", "issued_on", 110, 117),
    ("segment_p", "interest_code", 118, 118),
    ("segment_p", "interest_amount", 127, 141),
    ("segment_p", "discount_code", 142, 142),
    ("segment_p", "protest_code", 221, 221),
    ("segment_p", "currency", 228, 229),
    ("segment_q", "payer_document_type", 18, 18),
    ("segment_q", "payer_document", 19, 33),
    ("segment_q", "payer_name", 34, 73),
    ("segment_q", "payer_zip", 129, 133),
    ("segment_r", "fine_code", 66, 66),
    ("segment_r", "fine_date", 67, 74),
    ("segment_r", "fine_amount", 75, 89),
    ("segment_t", "movement", 16, 17),
    ("segment_t", "due_date", 74, 81),
    ("segment_t", "amount", 82, 96),
    ("segment_t", "fee", 199, 213),
    ("segment_t", "reasons", 214, 223),
    ("segment_u", "paid_amount", 78, 92),
    ("segment_u", "credited_amount", 93, 107),
    ("segment_u", "occurred_on", 138, 145),
    ("segment_u", "credited_on", 146, 153),
    ("batch_trailer", "record_count", 18, 23),
    ("file_trailer", "batch_count", 18, 23),
    ("file_trailer", "record_count", 24, 29),
]
BANK_PUBLISHED = {
    "caixa_sigcb": [
        ("file_header", "beneficiary_code", 59, 64),
        ("segment_p", "beneficiary_code", 24, 29),
        ("segment_p", "nosso_numero_modality", 41, 42),
        ("segment_p", "nosso_numero", 43, 57),
        ("segment_p", "document_number", 63, 73),
        # CAIXA 67.118 (SIGCB, June 2018, as carried by eduardokum/laravel-boleto
        # manuais/CEF/novos/240_posicoes.pdf) 3.6.3, 13.3T: in the retorno the
        # modality is at 40-41 and the number at 42-56, one position left of P's.
        ("segment_t", "nosso_numero_modality", 40, 41),
        ("segment_t", "nosso_numero", 42, 56),
        ("segment_t", "nosso_numero_digit", 57, 57),
        ("batch_trailer", "simple_count", 24, 29),  # 3.5.8, 06.5 and 07.5
        ("batch_trailer", "simple_amount", 30, 46),
    ],
    "bb_convenio7": [
        ("file_header", "convenio", 33, 41),
        ("file_header", "wallet", 46, 47),
        ("segment_p", "account", 24, 35),
        ("segment_p", "nosso_numero", 38, 57),
        ("segment_p", "document_number", 63, 77),
        ("segment_t", "nosso_numero", 38, 57),
    ],
}


@pytest.mark.parametrize("key", sorted(BANK_LAYOUTS))
def test_tables_hold_the_published_positions(key: str) -> None:
    bank = BANK_LAYOUTS[key]
    for record, name, start, end in PUBLISHED + BANK_PUBLISHED[key]:
        item = getattr(bank, record)[name]
        assert (item.start, item.end) == (start, end), (key, record, name)


def test_text_is_written_the_way_banks_read_it() -> None:
    assert cnab_text("Maria da Conceição D'Ávila") == "MARIA DA CONCEICAO D'AVILA"
    assert cnab_text("tab\there\nnewline") == "TAB HERE NEWLINE"
    assert cnab_text("東京") == ""


def test_a_value_too_wide_for_its_field_is_refused_not_shifted() -> None:
    with pytest.raises(ValueError, match="nsa"):
        CAIXA_SIGCB.file_header.compile().line(
            {"bank_code": "104", "company_document_type": 2, "company_document": "1",
             "agency": 1, "agency_digit": "0", "beneficiary_code": 1, "company_name": "X",
             "file_kind": 1, "generated_on": "01012024", "generated_time": "000000",
             "nsa": 1_000_000, "company_reserved": ""}
        )  # fmt: skip


# --- The file, field by field -------------------------------------------------------------


def _charges(db: Engine) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, c.debt_id, c.nosso_numero, c.amount, c.due_date, c.payer_name, "
                "d.government_id FROM charges c JOIN debtors d ON d.id = c.debtor_id "
                "ORDER BY c.id"
            )
        ).mappings()
        return [dict(row) for row in rows]


@pytest.mark.parametrize("bank", ["caixa_sigcb", "bb_convenio7"])
def test_every_line_of_a_remessa_field_by_field(bank_db: Engine, tmp_path: Path, bank: str) -> None:
    settings = get_settings() if bank == "caixa_sigcb" else bb_settings()
    rows = sample_rows(3)
    rows[1] = ("José da Conceição", *rows[1][1:])
    run_import(bank_db, debtor_csv(rows))
    charges = _charges(bank_db)
    out = tmp_path / "remessa.rem"

    result = generate_remessa(bank_db, actor=OPERATOR, out=out, settings=settings, now=GENERATED)

    assert [f.nsa for f in result.files] == [1]
    data = out.read_bytes()
    lines = lines_of(data)
    layout = BANK_LAYOUTS[bank]
    bank_code = layout.bank_code
    assert len(lines) == 4 + 3 * 3  # headers, P+Q+R per charge, trailers
    assert all(line[0:3] == bank_code for line in lines)

    header = lines[0]
    assert field(header, 4, 7) == "0000" and field(header, 8, 8) == "0"
    assert field(header, 18, 18) == "2"  # CNPJ
    assert field(header, 19, 32) == settings.beneficiary_document
    assert field(header, 73, 102).rstrip() == cnab_text(settings.beneficiary_name)[:30]
    assert field(header, 143, 143) == "1"  # remessa
    assert field(header, 144, 151) == "02052024"
    assert field(header, 152, 157) == "093015"
    assert field(header, 158, 163) == "000001"
    if bank == "caixa_sigcb":
        assert field(header, 59, 64) == settings.beneficiary_code
        assert field(header, 103, 132).rstrip() == "CAIXA ECONOMICA FEDERAL"
        assert field(header, 192, 211).rstrip() == "REMESSA-PRODUCAO"
    else:
        assert field(header, 33, 41) == "00" + settings.beneficiary_code
        assert field(header, 42, 45) == "0014"
        assert field(header, 46, 47) == "17" and field(header, 48, 50) == "019"

    batch = lines[1]
    assert field(batch, 4, 7) == "0001" and field(batch, 8, 8) == "1"
    assert field(batch, 9, 9) == "R" and field(batch, 10, 11) == "01"
    assert field(batch, 184, 191) == "00000001"
    assert field(batch, 192, 199) == "02052024"

    for index, charge in enumerate(charges):
        p, q, r = lines[2 + 3 * index : 5 + 3 * index]
        assert (field(p, 8, 8), field(p, 14, 14)) == ("3", "P")
        assert (field(q, 14, 14), field(r, 14, 14)) == ("Q", "R")
        assert [int(field(x, 9, 13)) for x in (p, q, r)] == [3 * index + 1, 3 * index + 2,
                                                              3 * index + 3]  # fmt: skip
        assert field(p, 16, 17) == field(q, 16, 17) == field(r, 16, 17) == "01"
        if bank == "caixa_sigcb":
            assert field(p, 24, 29) == settings.beneficiary_code
            assert field(p, 41, 42) == "14"
            assert int(field(p, 43, 57)) == charge["nosso_numero"]
            assert field(p, 63, 73).rstrip() == str(charge["id"])
        else:
            assert (
                field(p, 38, 57) == f"{settings.beneficiary_code}{charge['nosso_numero']:010d}   "
            )
            assert field(p, 58, 58) == "7"  # carteira 17
            assert field(p, 63, 77).rstrip() == str(charge["id"])
        due = charge["due_date"]
        assert field(p, 78, 85) == due.strftime("%d%m%Y")
        assert int(field(p, 86, 100)) == int(charge["amount"] * 100)
        assert field(p, 107, 108) == "02" and field(p, 109, 109) == "N"
        assert field(p, 118, 118) == "1"  # juros: valor por dia
        assert field(p, 119, 126) == "11052024"  # from the day after the due date
        per_day = (charge["amount"] * Decimal("0.01") / 30).quantize(Decimal("0.01"))
        assert int(field(p, 127, 141)) == max(int(per_day * 100), 1)
        assert field(p, 142, 142) == "0" and int(field(p, 151, 165)) == 0  # no discount
        assert field(p, 221, 221) == "3" and field(p, 228, 229) == "09"
        if bank == "caixa_sigcb":  # CAIXA 67.118 3.5.3: 30-40 zeros, 240 blank (C092)
            assert field(p, 30, 40) == "0" * 11 and field(p, 240, 240) == " "
            assert field(p, 106, 106) == "0"  # 23.3P: '0'
            assert field(p, 224, 224) == "1" and field(p, 225, 227) == "090"  # C028, C029
        else:  # BB 2017 23.3P: 'branco'; 38.3P and 39.3P: zeros (not treated by BB)
            assert field(p, 106, 106) == " "
            assert field(p, 224, 227) == "0000"

        assert field(q, 18, 18) == "1"  # CPF
        assert field(q, 19, 33) == charge["government_id"].rjust(15, "0")
        assert field(q, 34, 73).rstrip() == cnab_text(charge["payer_name"])
        assert field(r, 66, 66) == "2"  # multa percentual
        assert field(r, 67, 74) == "11052024"
        assert int(field(r, 75, 89)) == 200  # 2,00 %
        if bank == "caixa_sigcb":  # CAIXA 67.118 3.5.6, 20.3R and 21.3R: spaces
            assert field(r, 180, 240) == " " * 61
        else:  # BB 2017 21.3R-28.3R: zeros where FEBRABAN has débito automático
            assert field(r, 200, 215) == "0" * 16
    assert field(lines[2 + 3 + 1], 34, 73).rstrip() == "JOSE DA CONCEICAO"

    batch_trailer, file_trailer = lines[-2], lines[-1]
    assert field(batch_trailer, 8, 8) == "5"
    assert int(field(batch_trailer, 18, 23)) == 3 * 3 + 2
    total = sum(charge["amount"] for charge in charges)
    if bank == "caixa_sigcb":  # CAIXA 67.118 3.5.8: titles and their sum, simple carteira
        assert int(field(batch_trailer, 24, 29)) == 3
        assert int(field(batch_trailer, 30, 46)) == int(total * 100)
    else:  # BB 2017 (manuais/BB/novos/Cnab240Agosto2017.pdf) 06.5: 24-240 filler
        assert field(batch_trailer, 24, 240).strip() == ""
    assert field(file_trailer, 4, 8) == "99999"
    assert int(field(file_trailer, 18, 23)) == 1
    assert int(field(file_trailer, 24, 29)) == len(lines)

    # Parsed with the tables, the same values.
    p = layout.segment_p.read(lines[2])
    assert p["movement"] == "01" and int(p["amount"]) == int(charges[0]["amount"] * 100)
    assert result.files[0].total_amount == total
    assert result.files[0].records == len(lines)


def test_without_a_fine_no_segment_r_and_without_interest_code_3(
    bank_db: Engine, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        get_settings(),
        bank_fine_percent=Decimal("0"),
        bank_interest_monthly_percent=Decimal("0"),
        bank_discount_percent=Decimal("5"),
        bank_discount_days=2,
    )
    run_import(bank_db, debtor_csv(sample_rows(2)))
    out = tmp_path / "r.rem"
    generate_remessa(bank_db, actor=OPERATOR, out=out, settings=settings, now=GENERATED)
    lines = lines_of(out.read_bytes())
    assert [line[13] for line in lines[2:-2]] == ["P", "Q", "P", "Q"]
    p = lines[2]
    assert field(p, 118, 118) == "3" and int(field(p, 127, 141)) == 0  # isento
    assert field(p, 142, 142) == "1" and field(p, 143, 150) == "08052024"
    assert int(field(p, 151, 165)) == 503  # 5 % of 100,50 is 5,025: 5,03


# --- What is sent, and when ----------------------------------------------------------------


def test_nsa_increases_each_charge_goes_once_and_a_canceled_one_is_written_off(
    bank_db: Engine, tmp_path: Path
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(4)))
    first = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "1.rem", now=GENERATED)
    assert (first.registrations, first.write_offs, first.files[0].nsa) == (4, 0, 1)

    nothing = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "2.rem")
    assert nothing.files == [] and not (tmp_path / "2.rem").exists()
    assert scalar(bank_db, "SELECT last_nsa FROM bank_file_sequences") == 1  # not used up

    run_import(bank_db, debtor_csv(sample_rows(2, start=10)))
    charge_id = scalar(bank_db, "SELECT min(id) FROM charges")
    cancel_charge(bank_db, charge_id=charge_id, reason="debt renegotiated", actor=OPERATOR)
    second = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "3.rem", now=GENERATED)
    assert (second.registrations, second.write_offs, second.files[0].nsa) == (2, 1, 2)
    lines = lines_of((tmp_path / "3.rem").read_bytes())
    assert field(lines[0], 158, 163) == "000002"
    write_off = lines[2]
    assert field(write_off, 14, 14) == "P" and field(write_off, 16, 17) == "02"
    nosso = scalar(bank_db, "SELECT nosso_numero FROM charges WHERE id = :id", id=charge_id)
    assert int(field(write_off, 43, 57)) == nosso
    assert field(lines[3], 14, 14) == "P" and field(lines[3], 16, 17) == "01"
    assert int(field(lines[-2], 24, 29)) == 3  # two registrations and the write-off
    sent_twice = scalar(
        bank_db, "SELECT count(*) FROM (SELECT charge_id, kind FROM remessa_items "
        "GROUP BY 1, 2 HAVING count(*) > 1) AS d"
    )  # fmt: skip
    assert sent_twice == 0
    assert generate_remessa(bank_db, actor=OPERATOR).files == []


def test_a_generated_file_downloads_again_byte_for_byte_and_the_download_is_audited(
    bank_db: Engine, tmp_path: Path
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(3)))
    result = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r.rem")
    remessa_id = result.files[0].remessa_id
    cancel_charge(
        bank_db, charge_id=scalar(bank_db, "SELECT min(id) FROM charges"), reason="x",
        actor=OPERATOR,
    )  # fmt: skip
    name, data = remessa_download(bank_db, actor=OPERATOR, remessa_id=remessa_id)
    assert data == (tmp_path / "r.rem").read_bytes()
    assert name == "remessa_104_000001.rem"
    history = remessa_history(bank_db, actor=VIEWER)
    assert history[0]["registrations"] == 3 and history[0]["sha256"] == result.files[0].sha256
    assert (
        scalar(
            bank_db,
            "SELECT count(*) FROM audit_events WHERE action = 'bank_file.remessa_download' "
            "AND subject = :s",
            s=f"remessa:{remessa_id}",
        )
        == 1
    )
    with pytest.raises(Forbidden):
        remessa_download(bank_db, actor=VIEWER, remessa_id=remessa_id)
    with pytest.raises(Forbidden):
        generate_remessa(bank_db, actor=VIEWER)


def test_files_are_planned_within_a_batchs_99999_records() -> None:
    terms = RemessaTerms()
    plan = plan_files(write_offs=5, registrations=70_000, terms=terms)
    per_file = [item.write_offs + 3 * item.registrations for item in plan]
    assert all(records <= MAX_BATCH_RECORDS for records in per_file)
    assert sum(item.registrations for item in plan) == 70_000
    assert [item.first_registration for item in plan] == [1, 33_332, 66_665]
    assert plan[0].write_offs == 5 and plan[1].write_offs == 0
    assert plan_files(write_offs=0, registrations=0, terms=terms) == []


def test_a_remessa_larger_than_a_batch_is_several_files_with_consecutive_nsas(
    bank_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of 7 detail records holds two charges of P, Q and R: 5 charges, 3 files.
    monkeypatch.setattr("billing.cnab.service.MAX_BATCH_RECORDS", 7)
    monkeypatch.setattr("billing.cnab.remessa.MAX_BATCH_RECORDS", 7)
    run_import(bank_db, debtor_csv(sample_rows(5)))
    result = generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "big.rem")
    assert [f.nsa for f in result.files] == [1, 2, 3]
    assert [f.registrations for f in result.files] == [2, 2, 1]
    paths = [tmp_path / "big.rem", tmp_path / "big-2.rem", tmp_path / "big-3.rem"]
    assert [f.path for f in result.files] == [str(p) for p in paths]
    nossos = []
    for nsa, path in enumerate(paths, start=1):
        lines = lines_of(path.read_bytes())
        assert int(field(lines[0], 158, 163)) == nsa
        assert int(field(lines[-1], 24, 29)) == len(lines)
        nossos += [int(field(line, 43, 57)) for line in lines if line[13] == "P"]
    assert nossos == [c["nosso_numero"] for c in _charges(bank_db)]
    assert not list(tmp_path.glob(".*.part"))


def test_a_failed_generation_writes_no_file_and_gives_its_nsa_back(
    bank_db: Engine, tmp_path: Path
) -> None:
    run_import(bank_db, debtor_csv(sample_rows(2)))
    with bank_db.begin() as conn:  # a document no file can carry: the line is refused
        conn.execute(text("UPDATE debtors SET government_id = repeat('9', 15) || id"))
    with pytest.raises(ValueError, match="payer_document"):
        generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r.rem")
    assert list(tmp_path.iterdir()) == []
    assert scalar(bank_db, "SELECT count(*) FROM remessas") == 0
    assert scalar(bank_db, "SELECT count(*) FROM remessa_items") == 0
    with bank_db.begin() as conn:
        conn.execute(text("UPDATE debtors SET government_id = substr(government_id, 5)"))
    assert generate_remessa(bank_db, actor=OPERATOR).files[0].nsa == 1


def test_settings_that_make_no_sense_are_refused_with_a_sentence(bank_db: Engine) -> None:
    from billing.core.errors import OperatorError

    bad = dataclasses.replace(get_settings(), bank_fine_percent=Decimal("2.005"))
    with pytest.raises(OperatorError, match="BANK_FINE_PERCENT"):
        generate_remessa(bank_db, actor=OPERATOR, settings=bad)
    wrong_bank = dataclasses.replace(get_settings(), bank_code="001")
    with pytest.raises(OperatorError, match="BANK_CODE"):
        generate_remessa(bank_db, actor=OPERATOR, settings=wrong_bank)


def test_bb_and_caixa_tables_differ_where_their_manuals_do() -> None:
    assert BB_CONVENIO7.segment_p["nosso_numero"].kind == "A"
    assert CAIXA_SIGCB.segment_p["nosso_numero"].kind == "N"
    assert isinstance(Settings(), Settings)
    assert date(2024, 1, 1) < date(2024, 1, 2)


def test_a_second_generation_at_the_same_time_is_refused_not_duplicated(
    bank_db: Engine,
) -> None:
    from billing.core.errors import OperatorError
    from db.bank_files import try_lock_remessa

    run_import(bank_db, debtor_csv(sample_rows(2)))
    with bank_db.begin() as other:  # another generation holds the lock
        assert try_lock_remessa(other)
        with pytest.raises(OperatorError, match="Another remessa is being generated"):
            generate_remessa(bank_db, actor=OPERATOR)
    assert generate_remessa(bank_db, actor=OPERATOR).registrations == 2


def test_names_with_a_backslash_a_tab_or_a_line_break_come_out_whole(
    bank_db: Engine, tmp_path: Path
) -> None:
    # The charges stream out as COPY text, which escapes these three: read back exactly.
    run_import(bank_db, debtor_csv(sample_rows(2)))
    with bank_db.begin() as conn:
        conn.execute(text("UPDATE charges SET payer_name = E'Ana\\\\Maria\\tSouza\\nLima'"))
    generate_remessa(bank_db, actor=OPERATOR, out=tmp_path / "r.rem", now=GENERATED)
    lines = lines_of((tmp_path / "r.rem").read_bytes())
    names = [field(line, 34, 73).rstrip() for line in lines if line[13] == "Q"]
    assert names == ["ANA\\MARIA SOUZA LIMA"] * 2
