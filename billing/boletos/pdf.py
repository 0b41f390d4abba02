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


@dataclass(frozen=True)
class SlipFields:
    """What one boleto prints, checked and drawn from this one object.

    ``payer_document`` is formatted for print (``format_government_id``) and
    ``nosso_numero`` is the display form (``format_nosso_numero``).
    """

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
    barcode: str
    digitable_line: str
    pix_code: str | None
    instructions: tuple[str, ...]
    document_kind: str


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
    fields = SlipFields(
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
        barcode=barcode,
        digitable_line=digitable_line,
        pix_code=pix_code,
        instructions=tuple(instructions) or _default_instructions(debt_id, pix_code),
        document_kind=document_kind,
    )
    _check_consistency(fields)
    return _draw_page(fields, compress=compress)


def _draw_page(fields: SlipFields, *, compress: bool) -> bytes:
    """The A4 page: recibo do pagador, cut line, ficha de compensação and its bars."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1 if compress else 0)
    canvas.setTitle(f"Boleto {fields.nosso_numero} - vencimento {date_br(fields.due_date)}")
    canvas.setAuthor(fields.beneficiary.name)
    canvas.setSubject(f"Documento {fields.debt_id}")
    slip = _Slip(c=canvas, f=fields)
    slip.draw_payer_receipt(top=10 * mm)
    _draw_cut_line(canvas, top=152 * mm)
    bottom = slip.draw_compensation_form(top=160 * mm)
    _draw_barcode(canvas, fields.barcode, top=bottom + 3 * mm)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _check_consistency(fields: SlipFields) -> None:
    """ValueError when the bars, the printed numbers and the Pix code disagree."""
    beneficiary, amount, barcode = fields.beneficiary, fields.amount, fields.barcode
    parts = parse_barcode(barcode)
    if barcode_from_digitable_line(fields.digitable_line) != barcode:
        raise ValueError("digitable line and barcode are of different boletos")
    if parts.bank_code != beneficiary.bank_code:
        raise ValueError(
            f"barcode is for bank {parts.bank_code}, beneficiary banks with {beneficiary.bank_code}"
        )
    if parts.amount_cents != amount_to_cents(amount):
        raise ValueError(f"barcode amount is {parts.amount_cents} cents, slip says {amount}")
    if parts.factor != due_date_factor(fields.due_date):
        raise ValueError(
            f"barcode due-date factor {parts.factor} does not match {fields.due_date.isoformat()}"
        )
    if fields.pix_code is not None:
        pix = parse_pix_payload(fields.pix_code)
        if pix.amount is not None and pix.amount != amount:
            raise ValueError(f"Pix amount {pix.amount} differs from the slip amount {amount}")


def _default_instructions(debt_id: str, pix_code: str | None) -> tuple[str, ...]:
    lines = [f"Referente ao documento {debt_id}."]
    if pix_code:
        lines.append(
            "Este boleto também pode ser pago com Pix: use o QR code do recibo do pagador."
        )
    lines.append("Em caso de dúvida, entre em contato com o beneficiário.")
    return tuple(lines)


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


# The ficha de compensação's columns: the wide left part, the right one from RIGHT_X.
FORM_LEFT = WIDTH - RIGHT_COLUMN
RIGHT_X = LEFT + FORM_LEFT
# Its two rows of small boxes (document, then bank use) share these widths; the last box
# takes what is left of the left part.
_FIRST_BOX_WIDTHS = (28 * mm, 42 * mm, 20 * mm, 15 * mm)
DOCUMENT_WIDTHS = (*_FIRST_BOX_WIDTHS, FORM_LEFT - sum(_FIRST_BOX_WIDTHS))
MONEY_ROWS = (
    "(-) Desconto / Abatimento",
    "(-) Outras Deduções",
    "(+) Mora / Multa",
    "(+) Outros Acréscimos",
    "(=) Valor Cobrado",
)


@dataclass(frozen=True)
class _Slip:
    """Draws the two halves of the page from `f` on `c`; ``top`` arguments grow
    downwards and each step returns the ``top`` below what it drew."""

    c: Canvas
    f: SlipFields

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
        lines: Sequence[str],
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

    def row_of_boxes(
        self, top: float, widths: Sequence[float], labels: Sequence[str], values: Sequence[str]
    ) -> None:
        """Boxes side by side from LEFT, one per (width, label, value)."""
        x = LEFT
        for width, label, value in zip(widths, labels, values, strict=True):
            self.box(x, top, width, label, value)
            x += width

    def header(self, top: float, title: str) -> float:
        """Bank name | bank code with digit | linha digitável (or a title)."""
        c = self.c
        bank_code = self.f.beneficiary.bank_code
        baseline = self._y(top + 6 * mm)
        c.setFont(BOLD, 12)
        c.drawString(LEFT, baseline, BANK_NAMES.get(bank_code, bank_code))
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
        c.drawCentredString(code_x + 10 * mm, baseline, bank_code_with_digit(bank_code))
        c.setFont(BOLD, 10.5)
        c.drawRightString(LEFT + WIDTH, baseline, title)
        c.setLineWidth(1.2)
        c.line(LEFT, self._y(top + 8 * mm), LEFT + WIDTH, self._y(top + 8 * mm))
        return top + 8 * mm

    # -- texts ------------------------------------------------------------

    def beneficiary_text(self, width: float) -> str:
        beneficiary = self.f.beneficiary
        return _name_and_id(
            beneficiary.name, f"CNPJ {format_government_id(beneficiary.document)}", width
        )

    def payer_text(self, width: float) -> str:
        document = self.f.payer_document
        kind = "CPF" if len(document) == 14 else "CNPJ"
        return _name_and_id(self.f.payer_name, f"{kind} {document}", width)

    # -- the recibo do pagador ----------------------------------------------

    def draw_payer_receipt(self, *, top: float) -> None:
        f, c = self.f, self.c
        c.setFont(BOLD, 9)
        c.drawString(LEFT, self._y(top + 3 * mm), "RECIBO DO PAGADOR")
        y = self.header(top + 4 * mm, f.digitable_line)
        left = WIDTH - 2 * 40 * mm
        col = 40 * mm
        self.box(LEFT, y, left, "Beneficiário", self.beneficiary_text(left))
        self.box(
            LEFT + left,
            y,
            col,
            "Agência/Código do Beneficiário",
            format_beneficiary_account(f.beneficiary),
        )
        self.box(
            LEFT + left + col, y, col, "Vencimento", date_br(f.due_date), align="right", bold=True
        )
        y += ROW
        self.box(LEFT, y, left, "Pagador", self.payer_text(left))
        self.box(LEFT + left, y, col, "Nosso Número", f.nosso_numero)
        self.box(
            LEFT + left + col,
            y,
            col,
            "Valor do Documento",
            brl(f.amount),
            align="right",
            bold=True,
        )
        y += ROW
        self.box(LEFT, y, 35 * mm, "Data do Documento", date_br(f.issue_date))
        self.box(LEFT + 35 * mm, y, left - 35 * mm, "Número do Documento", f.debt_id)
        self.box(LEFT + left, y, col, "E-mail do Pagador", f.payer_email or "")
        self.box(LEFT + left + col, y, col, "(=) Valor Cobrado", "", align="right")
        y += ROW
        if f.pix_code:
            y = self.draw_pix(f.pix_code, top=y + 4 * mm)
        c.setFont(LABEL_FONT, 7)
        c.drawRightString(LEFT + WIDTH, self._y(y + 4 * mm), "Autenticação mecânica")

    def draw_pix(self, pix_code: str, *, top: float) -> float:
        c = self.c
        size = 42 * mm
        # Sized directly: asking the widget for its bounds would encode the QR twice.
        widget = QrCodeWidget(pix_code, barLevel="M", barWidth=size, barHeight=size)
        drawing = Drawing(size, size)
        drawing.add(widget)
        renderPDF.draw(drawing, c, LEFT, self._y(top + size))

        text_x = LEFT + size + 4 * mm
        text_width = WIDTH - size - 4 * mm
        c.setFont(BOLD, 11)
        c.drawString(text_x, self._y(top + 6 * mm), f"Pague com Pix - {brl(self.f.amount)}")
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
        chunks = [pix_code[i : i + per_line] for i in range(0, len(pix_code), per_line)]
        for i, chunk in enumerate(chunks):
            c.drawString(text_x, self._y(top + 22 * mm + i * 3.4 * mm), chunk)
        return top + max(size, 22 * mm + len(chunks) * 3.4 * mm)

    # -- the ficha de compensação -------------------------------------------

    def draw_compensation_form(self, *, top: float) -> float:
        """The bank's half, row by row; returns its bottom (the bars go below it)."""
        y = self.header(top, self.f.digitable_line)
        y = self.draw_place_and_due_date(y)
        y = self.draw_beneficiary(y)
        y = self.draw_document_row(y)
        y = self.draw_bank_use_row(y)
        y = self.draw_instructions_and_amounts(y)
        y = self.draw_payer(y)
        self.c.setFont(LABEL_FONT, 7)
        self.c.drawRightString(
            LEFT + WIDTH,
            self._y(y + 3 * mm),
            "Autenticação mecânica - FICHA DE COMPENSAÇÃO",
        )
        return y

    def draw_place_and_due_date(self, top: float) -> float:
        if self.f.beneficiary.layout == LAYOUT_CAIXA_SIGCB:
            place = (
                "Preferencialmente nas casas lotéricas e agências da CAIXA, ou em qualquer banco"
            )
        else:
            place = "Pagável em qualquer banco"
        self.box(LEFT, top, FORM_LEFT, "Local de Pagamento", place)
        self.box(
            RIGHT_X,
            top,
            RIGHT_COLUMN,
            "Vencimento",
            date_br(self.f.due_date),
            align="right",
            bold=True,
        )
        return top + ROW

    def draw_beneficiary(self, top: float) -> float:
        beneficiary = self.f.beneficiary
        lines = [self.beneficiary_text(FORM_LEFT)]
        if beneficiary.address:
            lines.append(beneficiary.address)
        height = ROW + 3 * mm
        self.lines_box(LEFT, top, FORM_LEFT, height, "Beneficiário", lines)
        self.box(
            RIGHT_X,
            top,
            RIGHT_COLUMN,
            "Agência/Código do Beneficiário",
            format_beneficiary_account(beneficiary),
            height=height,
            align="right",
        )
        return top + height

    def draw_document_row(self, top: float) -> float:
        f = self.f
        self.row_of_boxes(
            top,
            DOCUMENT_WIDTHS,
            (
                "Data do Documento",
                "Nº do Documento",
                "Espécie Doc.",
                "Aceite",
                "Data Processamento",
            ),
            (date_br(f.issue_date), f.debt_id, f.document_kind, "N", date_br(f.issue_date)),
        )
        self.box(RIGHT_X, top, RIGHT_COLUMN, "Nosso Número", f.nosso_numero, align="right")
        return top + ROW

    def draw_bank_use_row(self, top: float) -> float:
        self.row_of_boxes(
            top,
            DOCUMENT_WIDTHS,
            ("Uso do Banco", "Carteira", "Espécie", "Quantidade", "Valor"),
            ("", self.f.beneficiary.wallet, "R$", "", ""),
        )
        self.box(
            RIGHT_X,
            top,
            RIGHT_COLUMN,
            "(=) Valor do Documento",
            brl(self.f.amount),
            align="right",
            bold=True,
        )
        return top + ROW

    def draw_instructions_and_amounts(self, top: float) -> float:
        self.lines_box(
            LEFT,
            top,
            FORM_LEFT,
            ROW * len(MONEY_ROWS),
            "Instruções (texto de responsabilidade do beneficiário)",
            self.f.instructions,
        )
        for i, label in enumerate(MONEY_ROWS):
            self.box(RIGHT_X, top + i * ROW, RIGHT_COLUMN, label)
        return top + ROW * len(MONEY_ROWS)

    def draw_payer(self, top: float) -> float:
        lines = [self.payer_text(WIDTH)]
        if self.f.payer_address:
            lines.append(self.f.payer_address)
        height = 16 * mm
        self.lines_box(LEFT, top, WIDTH, height, "Pagador", lines)
        self.c.setFont(LABEL_FONT, LABEL_SIZE)
        self.c.drawString(LEFT + 1.2 * mm, self._y(top + height - 1.5 * mm), "Sacador/Avalista:")
        return top + height


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
