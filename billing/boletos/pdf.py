"""The printable boleto: an A4 page with the recibo do pagador, the optional Pix
QR code and the FEBRABAN ficha de compensação with its Interleaved 2 of 5 bars.

Drawn with reportlab; the bars follow FEBRABAN's size (narrow bar 0,254 mm,
wide:narrow 3:1, height 13 mm, about 103 mm long). Output is deterministic
(reportlab's invariant mode), so the same charge always yields the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.common import I2of5
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from billing.boletos.codes import (
    BANK_NAMES,
    LAYOUT_CAIXA_SIGCB,
    Beneficiary,
    amount_to_cents,
    bank_code_with_digit,
    barcode_from_digitable_line,
    due_date_factor,
    format_beneficiary_account,
    parse_barcode,
)
from billing.boletos.pix import parse_pix_payload
from billing.core.formatting import brl, date_br, format_government_id

PAGE_WIDTH, PAGE_HEIGHT = A4
LEFT = 10 * mm
WIDTH = 190 * mm
RIGHT_COLUMN = 50 * mm  # vencimento, nosso número, valores
ROW = 9 * mm

BAR_NARROW = 0.254 * mm
BAR_RATIO = 3.0
BAR_HEIGHT = 13 * mm
BAR_QUIET = 5 * mm

LABEL_FONT, LABEL_SIZE = "Helvetica", 6
VALUE_FONT, VALUE_SIZE = "Helvetica", 8.5
BOLD = "Helvetica-Bold"


def boleto_pdf(
    *,
    beneficiary: Beneficiary,
    payer_name: str,
    payer_document: str,
    payer_email: str | None = None,
    payer_address: str | None = None,
    amount: Decimal,
    due_date: date,
    issue_date: date,
    nosso_numero: str,
    debt_id: str,
    barcode: str,
    digitable_line: str,
    pix_code: str | None,
    instructions: Sequence[str] = (),
    document_kind: str = "DM",
    compress: bool = True,
) -> bytes:
    """One boleto as PDF bytes, ready to e-mail or print.

    ``nosso_numero`` is the display form (``format_nosso_numero``). The barcode,
    linha digitável, amount, due date and Pix code are cross-checked before
    drawing: a slip whose bars and printed numbers disagree must never leave.
    ``compress=False`` keeps the page text searchable in the raw bytes (tests).
    """
    _check_consistency(
        beneficiary=beneficiary,
        amount=amount,
        due_date=due_date,
        barcode=barcode,
        digitable_line=digitable_line,
        pix_code=pix_code,
    )
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1 if compress else 0)
    canvas.setTitle(f"Boleto {nosso_numero} - vencimento {date_br(due_date)}")
    canvas.setAuthor(beneficiary.name)
    canvas.setSubject(f"Documento {debt_id}")

    slip = _Slip(
        c=canvas,
        beneficiary=beneficiary,
        payer_name=payer_name,
        payer_document=format_government_id(payer_document),
        payer_email=payer_email,
        payer_address=payer_address,
        amount=amount,
        due_date=due_date,
        issue_date=issue_date,
        nosso_numero=nosso_numero,
        debt_id=debt_id,
        digitable_line=digitable_line,
        pix_code=pix_code,
        instructions=list(instructions) or _default_instructions(debt_id, pix_code),
        document_kind=document_kind,
    )
    slip.draw_payer_receipt(top=10 * mm)
    _draw_cut_line(canvas, top=152 * mm)
    bottom = slip.draw_compensation_form(top=160 * mm)
    _draw_barcode(canvas, barcode, top=bottom + 3 * mm)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _check_consistency(
    *,
    beneficiary: Beneficiary,
    amount: Decimal,
    due_date: date,
    barcode: str,
    digitable_line: str,
    pix_code: str | None,
) -> None:
    parts = parse_barcode(barcode)
    if barcode_from_digitable_line(digitable_line) != barcode:
        raise ValueError("digitable line and barcode are of different boletos")
    if parts.bank_code != beneficiary.bank_code:
        raise ValueError(
            f"barcode is for bank {parts.bank_code}, beneficiary banks with {beneficiary.bank_code}"
        )
    if parts.amount_cents != amount_to_cents(amount):
        raise ValueError(f"barcode amount is {parts.amount_cents} cents, slip says {amount}")
    if parts.factor != due_date_factor(due_date):
        raise ValueError(
            f"barcode due-date factor {parts.factor} does not match {due_date.isoformat()}"
        )
    if pix_code is not None:
        pix = parse_pix_payload(pix_code)
        if pix.amount is not None and pix.amount != amount:
            raise ValueError(f"Pix amount {pix.amount} differs from the slip amount {amount}")


def _default_instructions(debt_id: str, pix_code: str | None) -> list[str]:
    lines = [f"Referente ao documento {debt_id}."]
    if pix_code:
        lines.append(
            "Este boleto também pode ser pago com Pix: use o QR code do recibo do pagador."
        )
    lines.append("Em caso de dúvida, entre em contato com o beneficiário.")
    return lines


def _fit(text: str, font: str, size: float, width: float) -> str:
    """Cut text with an ellipsis so it fits a box instead of spilling over."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _name_and_id(name: str, document: str, width: float) -> str:
    """Name then document, shortening the name but never the document."""
    suffix = f" - {document}"
    room = width - 2.4 * mm - stringWidth(suffix, VALUE_FONT, VALUE_SIZE)
    return _fit(name, VALUE_FONT, VALUE_SIZE, room) + suffix


@dataclass
class _Slip:
    """What the two halves of the page print; ``top`` arguments grow downwards."""

    c: Canvas
    beneficiary: Beneficiary
    payer_name: str
    payer_document: str
    payer_email: str | None
    payer_address: str | None
    amount: Decimal
    due_date: date
    issue_date: date
    nosso_numero: str
    debt_id: str
    digitable_line: str
    pix_code: str | None
    instructions: list[str]
    document_kind: str

    # -- primitives -------------------------------------------------------

    def _y(self, top: float) -> float:
        return PAGE_HEIGHT - top

    def box(
        self,
        x: float,
        top: float,
        width: float,
        label: str,
        value: str = "",
        *,
        height: float = ROW,
        align: str = "left",
        bold: bool = False,
    ) -> None:
        c = self.c
        c.setLineWidth(0.5)
        c.rect(x, self._y(top + height), width, height)
        c.setFont(LABEL_FONT, LABEL_SIZE)
        c.drawString(x + 1.2 * mm, self._y(top + 2.6 * mm), label)
        font = BOLD if bold else VALUE_FONT
        text = _fit(value, font, VALUE_SIZE, width - 2.4 * mm)
        c.setFont(font, VALUE_SIZE)
        baseline = self._y(top + height - 2.2 * mm)
        if align == "right":
            c.drawRightString(x + width - 1.2 * mm, baseline, text)
        else:
            c.drawString(x + 1.2 * mm, baseline, text)

    def lines_box(
        self,
        x: float,
        top: float,
        width: float,
        height: float,
        label: str,
        lines: list[str],
    ) -> None:
        c = self.c
        c.setLineWidth(0.5)
        c.rect(x, self._y(top + height), width, height)
        c.setFont(LABEL_FONT, LABEL_SIZE)
        c.drawString(x + 1.2 * mm, self._y(top + 2.6 * mm), label)
        c.setFont(VALUE_FONT, VALUE_SIZE)
        for i, line in enumerate(lines):
            c.drawString(
                x + 1.2 * mm,
                self._y(top + 6.5 * mm + i * 4 * mm),
                _fit(line, VALUE_FONT, VALUE_SIZE, width - 2.4 * mm),
            )

    def header(self, top: float, title: str) -> float:
        """Bank name | bank code with digit | linha digitável (or a title)."""
        c = self.c
        bank_name = BANK_NAMES.get(self.beneficiary.bank_code, self.beneficiary.bank_code)
        baseline = self._y(top + 6 * mm)
        c.setFont(BOLD, 12)
        c.drawString(LEFT, baseline, bank_name)
        c.setLineWidth(1.2)
        code_x = LEFT + 42 * mm
        c.line(code_x, self._y(top + 1 * mm), code_x, self._y(top + 8 * mm))
        c.line(
            code_x + 20 * mm,
            self._y(top + 1 * mm),
            code_x + 20 * mm,
            self._y(top + 8 * mm),
        )
        c.setFont(BOLD, 14)
        c.drawCentredString(
            code_x + 10 * mm, baseline, bank_code_with_digit(self.beneficiary.bank_code)
        )
        c.setFont(BOLD, 10.5)
        c.drawRightString(LEFT + WIDTH, baseline, title)
        c.setLineWidth(1.2)
        c.line(LEFT, self._y(top + 8 * mm), LEFT + WIDTH, self._y(top + 8 * mm))
        return top + 8 * mm

    # -- the two halves ---------------------------------------------------

    def beneficiary_text(self, width: float) -> str:
        return _name_and_id(
            self.beneficiary.name,
            f"CNPJ {format_government_id(self.beneficiary.document)}",
            width,
        )

    def payer_text(self, width: float) -> str:
        kind = "CPF" if len(self.payer_document) == 14 else "CNPJ"
        return _name_and_id(self.payer_name, f"{kind} {self.payer_document}", width)

    def draw_payer_receipt(self, *, top: float) -> None:
        c = self.c
        c.setFont(BOLD, 9)
        c.drawString(LEFT, self._y(top + 3 * mm), "RECIBO DO PAGADOR")
        y = self.header(top + 4 * mm, self.digitable_line)
        left = WIDTH - 2 * 40 * mm
        col = 40 * mm
        self.box(LEFT, y, left, "Beneficiário", self.beneficiary_text(left))
        self.box(
            LEFT + left,
            y,
            col,
            "Agência/Código do Beneficiário",
            format_beneficiary_account(self.beneficiary),
        )
        self.box(
            LEFT + left + col,
            y,
            col,
            "Vencimento",
            date_br(self.due_date),
            align="right",
            bold=True,
        )
        y += ROW
        self.box(LEFT, y, left, "Pagador", self.payer_text(left))
        self.box(LEFT + left, y, col, "Nosso Número", self.nosso_numero)
        self.box(
            LEFT + left + col,
            y,
            col,
            "Valor do Documento",
            brl(self.amount),
            align="right",
            bold=True,
        )
        y += ROW
        self.box(LEFT, y, 35 * mm, "Data do Documento", date_br(self.issue_date))
        self.box(LEFT + 35 * mm, y, left - 35 * mm, "Número do Documento", self.debt_id)
        self.box(LEFT + left, y, col, "E-mail do Pagador", self.payer_email or "")
        self.box(LEFT + left + col, y, col, "(=) Valor Cobrado", "", align="right")
        y += ROW
        if self.pix_code:
            y = self.draw_pix(top=y + 4 * mm)
        c.setFont(LABEL_FONT, 7)
        c.drawRightString(LEFT + WIDTH, self._y(y + 4 * mm), "Autenticação mecânica")

    def draw_pix(self, *, top: float) -> float:
        c = self.c
        size = 42 * mm
        # Sized directly: asking the widget for its bounds would encode the QR twice.
        widget = QrCodeWidget(self.pix_code, barLevel="M", barWidth=size, barHeight=size)
        drawing = Drawing(size, size)
        drawing.add(widget)
        renderPDF.draw(drawing, c, LEFT, self._y(top + size))

        text_x = LEFT + size + 4 * mm
        text_width = WIDTH - size - 4 * mm
        c.setFont(BOLD, 11)
        c.drawString(text_x, self._y(top + 6 * mm), f"Pague com Pix - {brl(self.amount)}")
        c.setFont(VALUE_FONT, 8.5)
        c.drawString(
            text_x,
            self._y(top + 12 * mm),
            "Abra o app do seu banco, escolha Pix e leia o QR code,",
        )
        c.drawString(
            text_x,
            self._y(top + 16 * mm),
            "ou use a opção Pix Copia e Cola com o código abaixo:",
        )
        mono_size = 7
        per_line = int(
            (text_width - 2 * mm) / (0.6 * mono_size)
        )  # Courier advances 0.6 em per character
        c.setFont("Courier", mono_size)
        chunks = [self.pix_code[i : i + per_line] for i in range(0, len(self.pix_code), per_line)]
        for i, chunk in enumerate(chunks):
            c.drawString(text_x, self._y(top + 22 * mm + i * 3.4 * mm), chunk)
        return top + max(size, 22 * mm + len(chunks) * 3.4 * mm)

    def draw_compensation_form(self, *, top: float) -> float:
        y = self.header(top, self.digitable_line)
        left = WIDTH - RIGHT_COLUMN
        right_x = LEFT + left
        if self.beneficiary.layout == LAYOUT_CAIXA_SIGCB:
            place = (
                "Preferencialmente nas casas lotéricas e agências da CAIXA, ou em qualquer banco"
            )
        else:
            place = "Pagável em qualquer banco"
        self.box(LEFT, y, left, "Local de Pagamento", place)
        self.box(
            right_x,
            y,
            RIGHT_COLUMN,
            "Vencimento",
            date_br(self.due_date),
            align="right",
            bold=True,
        )
        y += ROW
        beneficiary_lines = [self.beneficiary_text(left)]
        if self.beneficiary.address:
            beneficiary_lines.append(self.beneficiary.address)
        height = ROW + 3 * mm
        self.lines_box(LEFT, y, left, height, "Beneficiário", beneficiary_lines)
        self.box(
            right_x,
            y,
            RIGHT_COLUMN,
            "Agência/Código do Beneficiário",
            format_beneficiary_account(self.beneficiary),
            height=height,
            align="right",
        )
        y += height
        widths = [28 * mm, 42 * mm, 20 * mm, 15 * mm]
        widths.append(left - sum(widths))
        x = LEFT
        for width, label, value in zip(
            widths,
            [
                "Data do Documento",
                "Nº do Documento",
                "Espécie Doc.",
                "Aceite",
                "Data Processamento",
            ],
            [
                date_br(self.issue_date),
                self.debt_id,
                self.document_kind,
                "N",
                date_br(self.issue_date),
            ],
            strict=True,
        ):
            self.box(x, y, width, label, value)
            x += width
        self.box(right_x, y, RIGHT_COLUMN, "Nosso Número", self.nosso_numero, align="right")
        y += ROW
        x = LEFT
        for width, label, value in zip(
            widths,
            ["Uso do Banco", "Carteira", "Espécie", "Quantidade", "Valor"],
            ["", self.beneficiary.wallet, "R$", "", ""],
            strict=True,
        ):
            self.box(x, y, width, label, value)
            x += width
        self.box(
            right_x,
            y,
            RIGHT_COLUMN,
            "(=) Valor do Documento",
            brl(self.amount),
            align="right",
            bold=True,
        )
        y += ROW
        money_rows = [
            "(-) Desconto / Abatimento",
            "(-) Outras Deduções",
            "(+) Mora / Multa",
            "(+) Outros Acréscimos",
            "(=) Valor Cobrado",
        ]
        self.lines_box(
            LEFT,
            y,
            left,
            ROW * len(money_rows),
            "Instruções (texto de responsabilidade do beneficiário)",
            self.instructions,
        )
        for i, label in enumerate(money_rows):
            self.box(right_x, y + i * ROW, RIGHT_COLUMN, label)
        y += ROW * len(money_rows)
        payer_lines = [self.payer_text(WIDTH)]
        if self.payer_address:
            payer_lines.append(self.payer_address)
        height = 16 * mm
        self.lines_box(LEFT, y, WIDTH, height, "Pagador", payer_lines)
        self.c.setFont(LABEL_FONT, LABEL_SIZE)
        self.c.drawString(LEFT + 1.2 * mm, self._y(y + height - 1.5 * mm), "Sacador/Avalista:")
        y += height
        self.c.setFont(LABEL_FONT, 7)
        self.c.drawRightString(
            LEFT + WIDTH,
            self._y(y + 3 * mm),
            "Autenticação mecânica - FICHA DE COMPENSAÇÃO",
        )
        return y


def _draw_cut_line(canvas: Canvas, *, top: float) -> None:
    y = PAGE_HEIGHT - top
    canvas.saveState()
    canvas.setDash(2, 2)
    canvas.setLineWidth(0.5)
    canvas.line(LEFT, y, LEFT + WIDTH, y)
    canvas.restoreState()
    canvas.setFont(LABEL_FONT, 6)
    canvas.drawRightString(LEFT + WIDTH, y + 1.2 * mm, "Corte na linha pontilhada")


def _draw_barcode(canvas: Canvas, barcode: str, *, top: float) -> None:
    """The 44 digits as Interleaved 2 of 5 at FEBRABAN size, no bearer bars."""
    bars = I2of5(
        barcode,
        barWidth=BAR_NARROW,
        ratio=BAR_RATIO,
        barHeight=BAR_HEIGHT,
        checksum=0,
        bearers=0,
        quiet=1,
        lquiet=BAR_QUIET,
        rquiet=BAR_QUIET,
    )
    bars.drawOn(canvas, LEFT - BAR_QUIET + 2 * mm, PAGE_HEIGHT - top - BAR_HEIGHT)
