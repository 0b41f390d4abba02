"""The printable boleto: a real PDF with the right text, bars that decode back to
the 44 digits at FEBRABAN size, and refusal to print inconsistent slips."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from billing.boletos.codes import format_nosso_numero, issue_code
from billing.boletos.pdf import boleto_pdf
from billing.boletos.pix import pix_payload
from tests.support.beneficiaries import caixa

AMOUNT = Decimal("2952.95")
DUE = date(2025, 3, 10)

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="poppler-utils (pdftotext, pdftoppm) not installed",
)


def slip_arguments(**changes: object) -> dict:
    beneficiary = caixa(
        name="Fundo de Investimento em Direitos Creditórios Exemplo",
        address="Av. Paulista, 1000 - São Paulo/SP - 01310-100",
    )
    code, line = issue_code(
        beneficiary=beneficiary, nosso_numero=19, amount_cents=295295, due_date=DUE
    )
    arguments = {
        "beneficiary": beneficiary,
        "payer_name": "José da Silva Conceição",
        "payer_document": "52998224725",
        "payer_email": "jose@example.com",
        "payer_address": "Rua das Flores, 123 - Centro - Belo Horizonte/MG - 30110-000",
        "amount": AMOUNT,
        "due_date": DUE,
        "issue_date": date(2025, 2, 20),
        "nosso_numero": format_nosso_numero(beneficiary=beneficiary, nosso_numero=19),
        "debt_id": "DIV-2025-000123",
        "barcode": code,
        "digitable_line": line,
        "pix_code": pix_payload(
            key="123e4567-e12b-12d1-a456-426655440000",
            merchant_name=beneficiary.name,
            merchant_city="São Paulo",
            amount=AMOUNT,
            txid="DIV2025000123",
        ),
    }
    return arguments | changes


def test_pdf_is_a_one_page_document_of_reasonable_size() -> None:
    pdf = boleto_pdf(**slip_arguments())
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert 4_000 < len(pdf) < 100_000
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 1  # one page


def test_uncompressed_pdf_carries_the_printed_numbers() -> None:
    arguments = slip_arguments()
    pdf = boleto_pdf(**arguments, compress=False)
    for text in (
        arguments["digitable_line"],
        "104-0",
        "R$ 2.952,95",
        "10/03/2025",
        "14/000000000000019-7",
        "529.982.247-25",
        "11.222.333/0001-81",
        "1234/005507-7",
    ):
        assert text.encode("latin-1") in pdf, text


def test_same_charge_same_bytes() -> None:
    assert boleto_pdf(**slip_arguments()) == boleto_pdf(**slip_arguments())


def test_without_pix_there_is_no_pix_block() -> None:
    pdf = boleto_pdf(**slip_arguments(pix_code=None), compress=False)
    assert b"Pague com Pix" not in pdf
    assert slip_arguments()["digitable_line"].encode() in pdf


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": Decimal("2952.96")}, "amount"),
        ({"due_date": date(2025, 3, 11)}, "due-date factor"),
        (
            {"digitable_line": "10498.01952 25086.156582 70000.004146 1 53880000295295"},
            "different boletos",
        ),
    ],
)
def test_inconsistent_slip_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        boleto_pdf(**slip_arguments(**changes))


def test_barcode_with_wrong_check_digit_is_refused() -> None:
    code = slip_arguments()["barcode"]
    wrong = code[:4] + str((int(code[4]) + 1) % 10) + code[5:]
    with pytest.raises(ValueError, match="check digit"):
        boleto_pdf(**slip_arguments(barcode=wrong))


def test_pix_with_another_amount_is_refused() -> None:
    other = pix_payload(key="k", merchant_name="A", merchant_city="B", amount=Decimal("1.00"))
    with pytest.raises(ValueError, match="Pix amount"):
        boleto_pdf(**slip_arguments(pix_code=other))


@needs_poppler
def test_extracted_text(tmp_path: Path) -> None:
    arguments = slip_arguments()
    path = tmp_path / "boleto.pdf"
    path.write_bytes(boleto_pdf(**arguments))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for expected in (
        "RECIBO DO PAGADOR",
        "FICHA DE COMPENSAÇÃO",
        arguments["digitable_line"],
        "Local de Pagamento",
        "Vencimento",
        "Nosso Número",
        "R$ 2.952,95",
        "José da Silva Conceição - CPF 529.982.247-25",
        "CNPJ 11.222.333/0001-81",
        "Pague com Pix",
    ):
        assert expected in text, expected
    assert text.count(arguments["digitable_line"]) == 2  # receipt and ficha
    # The copia-e-cola is printed in full, wrapped over a few lines.
    squeezed = "".join(text.split())
    assert "".join(arguments["pix_code"].split()) in squeezed


# -- the bars, read back from pixels ---------------------------------------------

DPI = 600
ITF_DIGITS = {
    "nnwwn": "0",
    "wnnnw": "1",
    "nwnnw": "2",
    "wwnnn": "3",
    "nnwnw": "4",
    "wnwnn": "5",
    "nwwnn": "6",
    "nnnww": "7",
    "wnnwn": "8",
    "nwnwn": "9",
}


def _render_bottom_gray(pdf_path: Path, tmp_path: Path) -> np.ndarray:
    """The lower 45 mm of the page as a grayscale matrix at 600 dpi."""
    px_per_mm = DPI / 25.4
    top = int(252 * px_per_mm)
    subprocess.run(
        [
            "pdftoppm",
            "-gray",
            "-r",
            str(DPI),
            "-y",
            str(top),
            "-H",
            str(int(45 * px_per_mm)),
            "-W",
            str(int(210 * px_per_mm)),
            "-singlefile",
            str(pdf_path),
            str(tmp_path / "bars"),
        ],
        check=True,
    )
    data = (tmp_path / "bars.pgm").read_bytes()
    magic, width, height, maxval = data.split(maxsplit=4)[:4]
    assert magic == b"P5" and maxval == b"255"
    pixels = np.frombuffer(data[-int(width) * int(height) :], dtype=np.uint8)
    return pixels.reshape(int(height), int(width))


def _dark_runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dark = row < 128
    edges = np.flatnonzero(np.diff(dark.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [dark.size]))
    return np.diff(bounds), dark[bounds[:-1]]


def _decode_itf(row: np.ndarray) -> str:
    lengths, is_dark = _dark_runs(row)
    first, last = np.flatnonzero(is_dark)[[0, -1]]
    lengths = lengths[first : last + 1]
    wide = lengths > (lengths.min() + lengths.max()) / 2
    assert not wide[:4].any(), "start pattern is four narrow elements"
    assert list(wide[-3:]) == [True, False, False], (
        "stop pattern is wide bar, narrow space, narrow bar"
    )
    body = wide[4:-3]
    digits = []
    for i in range(0, body.size, 10):
        pair = body[i : i + 10]
        digits.append(ITF_DIGITS["".join("w" if w else "n" for w in pair[0::2])])
        digits.append(ITF_DIGITS["".join("w" if w else "n" for w in pair[1::2])])
    return "".join(digits)


@needs_poppler
def test_bars_decode_to_the_barcode_at_febraban_size(tmp_path: Path) -> None:
    arguments = slip_arguments()
    path = tmp_path / "boleto.pdf"
    path.write_bytes(boleto_pdf(**arguments))
    image = _render_bottom_gray(path, tmp_path)

    dark_runs_per_row = np.array([int((_dark_runs(row)[1]).sum()) for row in image])
    bar_rows = np.flatnonzero(dark_runs_per_row > 100)  # 114 bars in 44 digits
    assert bar_rows.size, "no barcode found in the lower part of the page"
    middle = image[int(np.median(bar_rows))]
    assert _decode_itf(middle) == arguments["barcode"]

    px_per_mm = DPI / 25.4
    dark_columns = np.flatnonzero(middle < 128)
    length_mm = (dark_columns[-1] - dark_columns[0] + 1) / px_per_mm
    height_mm = bar_rows.size / px_per_mm
    assert length_mm == pytest.approx(103, abs=1.0)
    assert height_mm == pytest.approx(13, abs=0.3)
    narrow_mm = _dark_runs(middle)[0][_dark_runs(middle)[1]].min() / px_per_mm
    assert narrow_mm == pytest.approx(0.254, abs=0.03)
