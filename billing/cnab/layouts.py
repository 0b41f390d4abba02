"""CNAB 240 record layouts as tables: every field's name, positions, type and default.

One table per record of each bank's layout; writing (billing.cnab.remessa) and reading
(billing.cnab.retorno) both go through them, so a position is written down once. A
field is numeric ("N": digits, right-aligned, zero-padded), alphanumeric ("A": upper-case
ASCII, left-aligned, space-padded, cut at its width) or a document ("D": a CPF/CNPJ,
digits or the letters of an alphanumeric CNPJ, right-aligned and zero-padded). A field
with a default holds that constant; one without takes the value of its name.

Sources followed (positions 1-based and inclusive, from the published manuals; no copy
of them was at hand while writing, so each table was written from knowledge of them and
checked for coverage of positions 1-240 by `RecordLayout.__post_init__`):

* FEBRABAN, "Layout Padrão de Arquivos CNAB 240 - Cobrança", versão 10 (records 0, 1,
  3-P, 3-Q, 3-R, 3-T, 3-U, 5, 9; occurrence codes C044, reasons C047): the common
  frame and every field not named below.
* CAIXA, "Leiaute de Arquivo Eletrônico Padrão CNAB 240 - Cobrança Bancária CAIXA -
  SIGCB": the beneficiary code (6) in the headers and in P/T (24-29), fields "uso
  exclusivo CAIXA" as zeros, the nosso número as modality (41-42, "14") and 15-digit
  sequence (43-57), "REMESSA-PRODUCAO" in the file header's 192-211, the remessa batch
  trailer's simple / secured / discounted totals, versions 101 (file) and 060 (batch).
* Banco do Brasil, "Layout de Arquivo Retorno/Remessa - CNAB 240 - Cobrança", convênio
  de 7 dígitos: the agreement as convênio (9) + "0014" + carteira (2) + variação (3) in
  33-52 (file) and 34-53 (batch), the 17-digit nosso número left-aligned in 38-57,
  versions 083 (file) and 042 (batch).

Checked afterwards against the published manuals, as carried by the public repository
eduardokum/laravel-boleto (commit 0081d09): CAIXA's "Leiaute de Arquivo Eletrônico
Padrão CNAB 240 - Cobrança Bancária CAIXA - SIGCB", 67.118 v010, June 2018
(manuais/CEF/novos/240_posicoes.pdf, "CAIXA 67.118" below), and Banco do Brasil's
"Particularidades BB - Leiaute CNAB 240", August 2017 (manuais/BB/novos/
Cnab240Agosto2017.pdf, "BB 2017" below); cross-checked with the JSON specs of
kmee/cnab240 (cnab240/bancos/cef/specs/*.json) and the PHP writers of laravel-boleto
(src/Cnab/Remessa/Cnab240/Banco/Bb.php). Each correction names its source where it is.

One batch per file for both banks (CAIXA's SIGCB accepts no more), so a file holds at
most 99,999 detail records (the batch's 5-digit record sequence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

LINE_WIDTH = 240
MAX_BATCH_RECORDS = 99_999  # positions 9-13 of a detail record: its sequence in the batch

NUMERIC, ALPHANUMERIC, DOCUMENT = "N", "A", "D"
_KINDS = (NUMERIC, ALPHANUMERIC, DOCUMENT)


@dataclass(frozen=True)
class Field:
    """One field of a record: positions `start`..`end`, 1-based and inclusive."""

    name: str
    start: int
    end: int
    kind: str
    default: str | None = None  # a constant; None: the record's value of this name
    meaning: str = ""

    @property
    def width(self) -> int:
        return self.end - self.start + 1

    @property
    def slice(self) -> slice:
        return slice(self.start - 1, self.end)

    @property
    def spec(self) -> str:
        """The format spec that pads (and, for text, cuts) a value to the field's width."""
        if self.kind == ALPHANUMERIC:
            return f"<{self.width}.{self.width}"
        return f"0>{self.width}"

    def render(self, value: Any) -> str:
        text = format(value, self.spec)
        if len(text) != self.width:
            raise ValueError(f"{self.name} ({self.start}-{self.end}) cannot hold {value!r}")
        return text


def n(name: str, start: int, end: int, default: str | None = None, meaning: str = "") -> Field:
    return Field(name, start, end, NUMERIC, default, meaning)


def a(name: str, start: int, end: int, default: str | None = None, meaning: str = "") -> Field:
    return Field(name, start, end, ALPHANUMERIC, default, meaning)


def d(name: str, start: int, end: int, meaning: str = "") -> Field:
    return Field(name, start, end, DOCUMENT, None, meaning)


def blank(start: int, end: int, meaning: str = "uso exclusivo FEBRABAN/CNAB") -> Field:
    return Field(f"blank_{start}", start, end, ALPHANUMERIC, "", meaning)


def zeros(start: int, end: int, meaning: str = "uso exclusivo do banco") -> Field:
    return Field(f"zeros_{start}", start, end, NUMERIC, "0", meaning)


@dataclass(frozen=True)
class RecordLayout:
    """A 240-character record: its fields cover every position exactly once."""

    name: str
    fields: tuple[Field, ...]
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        position = 1
        for item in self.fields:
            if item.kind not in _KINDS:
                raise ValueError(f"{self.name}: {item.name} has an unknown type {item.kind!r}")
            if item.start != position or item.end < item.start:
                raise ValueError(
                    f"{self.name}: {item.name} starts at {item.start}, expected {position}"
                )
            position = item.end + 1
        if position != LINE_WIDTH + 1:
            raise ValueError(f"{self.name}: the fields end at {position - 1}, not {LINE_WIDTH}")
        names = [item.name for item in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a field name repeats")
        object.__setattr__(self, "_by_name", {item.name: item for item in self.fields})

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    @property
    def variable_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.fields if item.default is None)

    def compile(self, constants: Mapping[str, Any] | None = None) -> CompiledRecord:
        """A fast writer: the defaults and `constants` rendered once, every other field
        padded by an f-string compiled for this record (format specs parsed once, not
        at every line; a million-charge remessa writes three million lines)."""
        render = compile_lines([(self, constants or {}, None)], line_end="")
        return CompiledRecord(self, render)

    def source(self, constants: Mapping[str, Any], positions: Mapping[str, int] | None) -> str:
        """This record as the body of an f-string: constants rendered, the other fields
        read from `v[name]`, or from `v[index]` when `positions` maps names to indexes."""
        unknown = set(constants) - set(self._by_name)
        if unknown:
            raise ValueError(f"{self.name}: no field named {sorted(unknown)}")
        parts: list[str] = []
        for item in self.fields:
            value = constants.get(item.name, item.default)
            if value is not None:
                parts.append(item.render(value).replace("{", "{{").replace("}", "}}"))
            elif positions is not None:
                parts.append(f"{{v[{positions[item.name]}]:{item.spec}}}")
            else:
                # Names and specs come from the tables in this module, never from data.
                parts.append(f"{{v[{item.name!r}]:{item.spec}}}")
        return "".join(parts)

    def write(self, values: Mapping[str, Any]) -> str:
        """One line from `values` (every field without a default must be given)."""
        return self.compile().line(values)

    def read(self, line: str) -> dict[str, str]:
        """Every field of `line` as text: text fields without their padding."""
        if len(line) != LINE_WIDTH:
            raise ValueError(f"a {self.name} has {LINE_WIDTH} characters, not {len(line)}")
        return {
            item.name: line[item.slice].rstrip() if item.kind == ALPHANUMERIC else line[item.slice]
            for item in self.fields
        }


def compile_lines(
    records: list[tuple[RecordLayout, Mapping[str, Any], Mapping[str, int] | None]],
    *,
    line_end: str = "\r\n",
) -> Callable[[Any], str]:
    """One function that writes several records at once (segments P, Q and R of a
    title), each followed by `line_end`, from one sequence (or mapping) of values: for
    each record its constants, and where each other field's value is in the sequence
    (None: by the field's name in a mapping). The text has constant parts rendered
    once and one format spec per variable field: no per-field dispatch at each line."""
    body = line_end.join(record.source(constants, positions) for record, constants, positions
                         in records) + line_end  # fmt: skip
    return cast(Callable[[Any], str], eval("lambda v: f" + repr(body), {"__builtins__": {}}))


@dataclass(frozen=True)
class CompiledRecord:
    layout: RecordLayout
    render: Callable[[Mapping[str, Any]], str]

    def line(self, values: Mapping[str, Any]) -> str:
        text = self.render(values)
        if len(text) != LINE_WIDTH:
            raise ValueError(self._overflow(values))
        return text

    def _overflow(self, values: Mapping[str, Any]) -> str:
        for item in self.layout.fields:
            if item.default is None and item.name in values:
                try:
                    item.render(values[item.name])
                except ValueError as exc:
                    return f"{self.layout.name}: {exc}"
        return f"{self.layout.name}: the line is not {LINE_WIDTH} characters long"


# --------------------------------------------------------------------------------------
# The records every layout shares (FEBRABAN v10), as building blocks
# --------------------------------------------------------------------------------------


def _control(record_type: str, batch: str | None = None) -> tuple[Field, ...]:
    """Positions 1-8: bank, batch (0000 file header, 9999 file trailer), record type."""
    return (
        n("bank_code", 1, 3, meaning="código do banco na compensação"),
        n("batch", 4, 7, batch, "lote de serviço"),
        n("record_type", 8, 8, record_type, "tipo de registro"),
    )


def _detail_head(segment: str) -> tuple[Field, ...]:
    """Positions 1-17 of a detail record: control, sequence, segment, movement."""
    return (
        *_control("3"),
        n("sequence", 9, 13, meaning="nº sequencial do registro no lote"),
        a("segment", 14, 14, segment, "código de segmento do registro detalhe"),
        blank(15, 15),
        n("movement", 16, 17, meaning="código de movimento remessa/retorno"),
    )


_SEGMENT_Q = (
    *_detail_head("Q"),
    n("payer_document_type", 18, 18, meaning="tipo de inscrição do pagador (1 CPF, 2 CNPJ)"),
    d("payer_document", 19, 33, "número de inscrição do pagador"),
    a("payer_name", 34, 73, meaning="nome do pagador"),
    a("payer_address", 74, 113, meaning="endereço"),
    a("payer_district", 114, 128, meaning="bairro"),
    n("payer_zip", 129, 133, meaning="CEP"),
    n("payer_zip_suffix", 134, 136, meaning="sufixo do CEP"),
    a("payer_city", 137, 151, meaning="cidade"),
    a("payer_state", 152, 153, meaning="UF"),
    n("guarantor_document_type", 154, 154, "0", "tipo de inscrição do sacador/avalista"),
    n("guarantor_document", 155, 169, "0", "número de inscrição do sacador/avalista"),
    a("guarantor_name", 170, 209, "", "nome do sacador/avalista"),
    n("correspondent_bank", 210, 212, "0", "código do banco correspondente"),
    a("correspondent_nosso_numero", 213, 232, "", "nosso nº no banco correspondente"),
    blank(233, 240),
)

_SEGMENT_R = (
    *_detail_head("R"),
    n("discount2_code", 18, 18, "0", "código do desconto 2"),
    n("discount2_date", 19, 26, "0", "data do desconto 2"),
    n("discount2_amount", 27, 41, "0", "valor/percentual do desconto 2"),
    n("discount3_code", 42, 42, "0", "código do desconto 3"),
    n("discount3_date", 43, 50, "0", "data do desconto 3"),
    n("discount3_amount", 51, 65, "0", "valor/percentual do desconto 3"),
    n("fine_code", 66, 66, meaning="código da multa (0 isento, 1 valor, 2 percentual)"),
    n("fine_date", 67, 74, meaning="data da multa"),
    n("fine_amount", 75, 89, meaning="valor/percentual da multa (2 decimais)"),
    a("payer_information", 90, 99, "", "informação ao pagador"),
    a("message_3", 100, 139, "", "mensagem 3"),
    a("message_4", 140, 179, "", "mensagem 4"),
    blank(180, 199),
    n("payer_occurrence_code", 200, 207, "0", "código de ocorrência do pagador"),
    n("debit_bank", 208, 210, "0", "banco da conta do débito"),
    n("debit_agency", 211, 215, "0", "agência do débito"),
    a("debit_agency_digit", 216, 216, "", "DV da agência do débito"),
    n("debit_account", 217, 228, "0", "conta corrente do débito"),
    a("debit_account_digit", 229, 229, "", "DV da conta do débito"),
    a("debit_agency_account_digit", 230, 230, "", "DV da agência/conta do débito"),
    n("debit_notice", 231, 231, "0", "aviso para débito automático"),
    blank(232, 240),
)

_SEGMENT_U = (
    *_detail_head("U"),
    n("interest_fine", 18, 32, meaning="juros/multa/encargos"),
    n("discount", 33, 47, meaning="valor do desconto concedido"),
    n("rebate", 48, 62, meaning="valor do abatimento concedido/cancelado"),
    n("iof", 63, 77, meaning="valor do IOF recolhido"),
    n("paid_amount", 78, 92, meaning="valor pago pelo pagador"),
    n("credited_amount", 93, 107, meaning="valor líquido a ser creditado"),
    n("other_expenses", 108, 122, meaning="valor de outras despesas"),
    n("other_credits", 123, 137, meaning="valor de outros créditos"),
    n("occurred_on", 138, 145, meaning="data da ocorrência (DDMMAAAA)"),
    n("credited_on", 146, 153, meaning="data da efetivação do crédito (DDMMAAAA)"),
    a("payer_occurrence", 154, 157, meaning="código da ocorrência do pagador"),
    n("payer_occurrence_date", 158, 165, meaning="data da ocorrência do pagador"),
    n("payer_occurrence_amount", 166, 180, meaning="valor da ocorrência do pagador"),
    a("payer_occurrence_text", 181, 210, meaning="complemento da ocorrência do pagador"),
    n("correspondent_bank", 211, 213, meaning="código do banco correspondente"),
    a("correspondent_nosso_numero", 214, 233, meaning="nosso nº no banco correspondente"),
    blank(234, 240),
)

_FILE_TRAILER_HEAD = (
    *_control("9", "9999"),
    blank(9, 17),
    n("batch_count", 18, 23, meaning="quantidade de lotes do arquivo"),
    n("record_count", 24, 29, meaning="quantidade de registros do arquivo"),
)


def _p_charge_terms(
    agency_digit: str = "0", write_off_code: str = "1", write_off_days: str | None = None
) -> tuple[Field, ...]:
    """Positions 78-229 of segment P, shared by both banks (FEBRABAN); the arguments are
    where a bank's manual asks for other constants."""
    return (
        n("due_date", 78, 85, meaning="data de vencimento (DDMMAAAA)"),
        n("amount", 86, 100, meaning="valor nominal do título (centavos)"),
        n("collecting_agency", 101, 105, "0", "agência encarregada da cobrança"),
        a("collecting_agency_digit", 106, 106, agency_digit, "DV da agência encarregada"),
        n("species", 107, 108, meaning="espécie do título"),
        a("acceptance", 109, 109, "N", "identificação de título aceito/não aceito"),
        n("issued_on", 110, 117, meaning="data da emissão do título"),
        n("interest_code", 118, 118, meaning="código dos juros de mora (1 por dia, 3 isento)"),
        n("interest_date", 119, 126, meaning="data dos juros de mora"),
        n("interest_amount", 127, 141, meaning="juros de mora por dia (centavos)"),
        n("discount_code", 142, 142, meaning="código do desconto 1 (0 sem, 1 valor fixo)"),
        n("discount_date", 143, 150, meaning="data do desconto 1"),
        n("discount_amount", 151, 165, meaning="valor do desconto 1 (centavos)"),
        n("iof", 166, 180, "0", "valor do IOF a ser recolhido"),
        n("rebate", 181, 195, "0", "valor do abatimento"),
        a("company_reference", 196, 220, meaning="identificação do título na empresa"),
        n("protest_code", 221, 221, "3", "código para protesto (3 não protestar)"),
        n("protest_days", 222, 223, "0", "número de dias para protesto"),
        n("write_off_code", 224, 224, write_off_code, "código para baixa/devolução"),
        n("write_off_days", 225, 227, write_off_days, "número de dias para baixa/devolução"),
        n("currency", 228, 229, "09", "código da moeda (09 real)"),
    )


# --------------------------------------------------------------------------------------
# CAIXA, SIGCB
# --------------------------------------------------------------------------------------

CAIXA_FILE_HEADER = RecordLayout(
    "CAIXA file header",
    (
        *_control("0", "0000"),
        blank(9, 17),
        n("company_document_type", 18, 18, meaning="tipo de inscrição da empresa (2 CNPJ)"),
        d("company_document", 19, 32, "número de inscrição da empresa"),
        zeros(33, 52, "uso exclusivo CAIXA"),
        n("agency", 53, 57, meaning="agência mantenedora da conta"),
        a("agency_digit", 58, 58, meaning="DV da agência"),
        n("beneficiary_code", 59, 64, meaning="código do convênio (beneficiário)"),
        zeros(65, 71, "uso exclusivo CAIXA"),
        zeros(72, 72, "uso exclusivo CAIXA"),
        a("company_name", 73, 102, meaning="nome da empresa"),
        a("bank_name", 103, 132, "CAIXA ECONOMICA FEDERAL", "nome do banco"),
        blank(133, 142),
        n("file_kind", 143, 143, meaning="código remessa (1) / retorno (2)"),
        n("generated_on", 144, 151, meaning="data de geração do arquivo (DDMMAAAA)"),
        n("generated_time", 152, 157, meaning="hora de geração do arquivo (HHMMSS)"),
        n("nsa", 158, 163, meaning="número seqüencial do arquivo (NSA)"),
        n("layout_version", 164, 166, "101", "nº da versão do layout do arquivo"),
        n("density", 167, 171, "0", "densidade de gravação"),
        a("bank_reserved", 172, 191, "", "para uso reservado do banco"),
        a("company_reserved", 192, 211, meaning="REMESSA-PRODUCAO / RETORNO-PRODUCAO"),
        a("app_version", 212, 215, "", "versão aplicativo CAIXA"),
        blank(216, 240),
    ),
)

CAIXA_BATCH_HEADER = RecordLayout(
    "CAIXA batch header",
    (
        *_control("1"),
        a("operation", 9, 9, meaning="tipo de operação (R remessa, T retorno)"),
        n("service", 10, 11, "01", "tipo de serviço (01 cobrança)"),
        zeros(12, 13, "uso exclusivo FEBRABAN/CNAB"),
        n("layout_version", 14, 16, "060", "nº da versão do layout do lote"),
        blank(17, 17),
        n("company_document_type", 18, 18, meaning="tipo de inscrição da empresa"),
        d("company_document", 19, 33, "número de inscrição da empresa"),
        n("beneficiary_code", 34, 39, meaning="código do convênio no banco"),
        zeros(40, 53, "uso exclusivo CAIXA"),
        n("agency", 54, 58, meaning="agência mantenedora da conta"),
        a("agency_digit", 59, 59, meaning="DV da agência"),
        n("agreement_code", 60, 65, meaning="código do convênio no banco (beneficiário)"),
        n("model_code", 66, 72, "0", "código do modelo personalizado"),
        zeros(73, 73, "uso exclusivo CAIXA"),
        a("company_name", 74, 103, meaning="nome da empresa"),
        a("message_1", 104, 143, "", "mensagem 1"),
        a("message_2", 144, 183, "", "mensagem 2"),
        n("file_number", 184, 191, meaning="número remessa/retorno"),
        n("recorded_on", 192, 199, meaning="data de gravação remessa/retorno"),
        n("credit_date", 200, 207, "0", "data do crédito"),
        blank(208, 240),
    ),
)

CAIXA_SEGMENT_P = RecordLayout(
    "CAIXA segment P",
    (
        *_detail_head("P"),
        n("agency", 18, 22, meaning="agência mantenedora da conta"),
        a("agency_digit", 23, 23, meaning="DV da agência"),
        n("beneficiary_code", 24, 29, meaning="código do convênio no banco"),
        # CAIXA 67.118 3.5.3 (11.3P-13.3P): 30-37 and 38-39 zeros, 40 the SINCO
        # modality ('0' for SIGCB's 17-digit nosso número, note G069A), then 41-57.
        zeros(30, 37, "uso exclusivo CAIXA"),
        zeros(38, 39, "uso exclusivo CAIXA"),
        n("sinco_modality", 40, 40, "0", "modalidade da carteira SINCO (0 no SIGCB)"),
        n("nosso_numero_modality", 41, 42, meaning="modalidade da carteira (14)"),
        n("nosso_numero", 43, 57, meaning="identificação do título no banco (nosso número)"),
        n("wallet_code", 58, 58, "1", "código da carteira (1 cobrança simples)"),
        n("registration_form", 59, 59, "1", "forma de cadastramento (1 registrada)"),
        a("document_type", 60, 60, "2", "tipo de documento (2 escritural)"),
        n("slip_issuer", 61, 61, "2", "identificação da emissão do boleto (2 beneficiário)"),
        a("slip_delivery", 62, 62, "0", "identificação da entrega do boleto (0 beneficiário)"),
        a("document_number", 63, 73, meaning="número do documento de cobrança (seu número)"),
        blank(74, 77, "uso exclusivo CAIXA"),
        *_p_charge_terms(),
        zeros(230, 239, "uso exclusivo CAIXA"),
        # CAIXA 67.118 42.3P, note C092: blank, the boleto takes no divergent payment.
        a("partial_payment", 240, 240, "", "autorização de pagamento parcial/divergente"),
    ),
)

CAIXA_SEGMENT_T = RecordLayout(
    "CAIXA segment T",
    (
        *_detail_head("T"),
        n("agency", 18, 22, meaning="agência mantenedora da conta"),
        a("agency_digit", 23, 23, meaning="DV da agência"),
        n("beneficiary_code", 24, 29, meaning="código do convênio no banco"),
        # Corrected from CAIXA 67.118 3.6.3 (11.3T-13.3T; kmee/cnab240 segmento_t.json
        # agrees on 42-56): in the retorno the modality is at 40-41 and the number at
        # 42-56, followed by its check digit at 57, not at 41-42 and 43-57 as in P.
        zeros(30, 32, "uso exclusivo CAIXA"),
        n("payers_bank", 33, 35, "0", "número do banco de pagadores (movimentos 36-38)"),
        zeros(36, 36, "uso exclusivo CAIXA"),
        blank(37, 38, "uso exclusivo CAIXA"),
        n("sinco_modality", 39, 39, "0", "modalidade da carteira SINCO (0 no SIGCB)"),
        n("nosso_numero_modality", 40, 41, meaning="modalidade da carteira (SIGCB)"),
        n("nosso_numero", 42, 56, meaning="identificação do título no banco (nosso número)"),
        n("nosso_numero_digit", 57, 57, meaning="DV do nosso número"),
        n("wallet_code", 58, 58, meaning="código da carteira"),
        a("document_number", 59, 69, meaning="número do documento de cobrança"),
        blank(70, 73, "uso exclusivo CAIXA"),
        n("due_date", 74, 81, meaning="data do vencimento do título"),
        n("amount", 82, 96, meaning="valor nominal do título"),
        n("collecting_bank", 97, 99, meaning="número do banco cobrador/recebedor"),
        n("collecting_agency", 100, 104, meaning="agência cobradora/recebedora"),
        a("collecting_agency_digit", 105, 105, meaning="DV da agência cobradora"),
        a("company_reference", 106, 130, meaning="identificação do título na empresa"),
        n("currency", 131, 132, meaning="código da moeda"),
        n("payer_document_type", 133, 133, meaning="tipo de inscrição do pagador"),
        d("payer_document", 134, 148, "número de inscrição do pagador"),
        a("payer_name", 149, 188, meaning="nome do pagador"),
        blank(189, 198, "uso exclusivo CAIXA"),
        n("fee", 199, 213, meaning="valor da tarifa/custas"),
        a(
            "reasons",
            214,
            223,
            meaning="identificação para rejeições, tarifas, custas, "
            "liquidação e baixas (cinco códigos de 2)",
        ),
        blank(224, 240),
    ),
)

CAIXA_BATCH_TRAILER = RecordLayout(
    "CAIXA batch trailer",
    (
        *_control("5"),
        blank(9, 17),
        n("record_count", 18, 23, meaning="quantidade de registros no lote"),
        n("simple_count", 24, 29, meaning="quantidade de títulos em cobrança simples"),
        n("simple_amount", 30, 46, meaning="valor total dos títulos em carteira simples"),
        n("secured_count", 47, 52, "0", "quantidade de títulos em cobrança caucionada"),
        n("secured_amount", 53, 69, "0", "valor total dos títulos em carteira caucionada"),
        n("discounted_count", 70, 75, "0", "quantidade de títulos em cobrança descontada"),
        n("discounted_amount", 76, 92, "0", "valor total dos títulos em carteira descontada"),
        blank(93, 123),
        blank(124, 240),
    ),
)

CAIXA_FILE_TRAILER = RecordLayout(
    "CAIXA file trailer",
    (*_FILE_TRAILER_HEAD, blank(30, 35), blank(36, 240)),
)


# --------------------------------------------------------------------------------------
# Banco do Brasil, convênio de 7 dígitos
# --------------------------------------------------------------------------------------


def _bb_agreement(first: int) -> tuple[Field, ...]:
    """BB's 20-position "código do convênio": convênio, product 0014, carteira, variação."""
    return (
        n("convenio", first, first + 8, meaning="número do convênio de cobrança"),
        n("product", first + 9, first + 12, "0014", "cobrança cedente"),
        n("wallet", first + 13, first + 14, meaning="número da carteira de cobrança"),
        n("wallet_variation", first + 15, first + 17, meaning="variação da carteira"),
        a("test_flag", first + 18, first + 19, meaning="brancos, ou TS num arquivo de teste"),
    )


def _bb_account(first: int) -> tuple[Field, ...]:
    """Agency and account with their check digits, from `first` (FEBRABAN)."""
    return (
        n("agency", first, first + 4, meaning="agência mantenedora da conta"),
        a("agency_digit", first + 5, first + 5, meaning="DV da agência"),
        n("account", first + 6, first + 17, meaning="número da conta corrente"),
        a("account_digit", first + 18, first + 18, meaning="DV da conta"),
        a("agency_account_digit", first + 19, first + 19, "", "DV da agência/conta"),
    )


BB_FILE_HEADER = RecordLayout(
    "Banco do Brasil file header",
    (
        *_control("0", "0000"),
        blank(9, 17),
        n("company_document_type", 18, 18, meaning="tipo de inscrição da empresa (2 CNPJ)"),
        d("company_document", 19, 32, "número de inscrição da empresa"),
        *_bb_agreement(33),
        *_bb_account(53),
        a("company_name", 73, 102, meaning="nome da empresa"),
        a("bank_name", 103, 132, "BANCO DO BRASIL S.A.", "nome do banco"),
        blank(133, 142),
        n("file_kind", 143, 143, meaning="código remessa (1) / retorno (2)"),
        n("generated_on", 144, 151, meaning="data de geração do arquivo (DDMMAAAA)"),
        n("generated_time", 152, 157, meaning="hora de geração do arquivo (HHMMSS)"),
        n("nsa", 158, 163, meaning="número seqüencial do arquivo (NSA)"),
        n("layout_version", 164, 166, "083", "nº da versão do layout do arquivo"),
        n("density", 167, 171, "0", "densidade de gravação"),
        a("bank_reserved", 172, 191, "", "para uso reservado do banco"),
        a("company_reserved", 192, 211, "", "para uso reservado da empresa"),
        blank(212, 240),
    ),
)

BB_BATCH_HEADER = RecordLayout(
    "Banco do Brasil batch header",
    (
        *_control("1"),
        a("operation", 9, 9, meaning="tipo de operação (R remessa, T retorno)"),
        n("service", 10, 11, "01", "tipo de serviço (01 cobrança)"),
        blank(12, 13),
        n("layout_version", 14, 16, "042", "nº da versão do layout do lote"),
        blank(17, 17),
        n("company_document_type", 18, 18, meaning="tipo de inscrição da empresa"),
        d("company_document", 19, 33, "número de inscrição da empresa"),
        *_bb_agreement(34),
        *_bb_account(54),
        a("company_name", 74, 103, meaning="nome da empresa"),
        a("message_1", 104, 143, "", "mensagem 1"),
        a("message_2", 144, 183, "", "mensagem 2"),
        n("file_number", 184, 191, meaning="número remessa/retorno"),
        n("recorded_on", 192, 199, meaning="data de gravação remessa/retorno"),
        n("credit_date", 200, 207, "0", "data do crédito"),
        blank(208, 240),
    ),
)

BB_SEGMENT_P = RecordLayout(
    "Banco do Brasil segment P",
    (
        *_detail_head("P"),
        *_bb_account(18),
        a("nosso_numero", 38, 57, meaning="nosso número: convênio (7) + sequência (10)"),
        n("wallet_code", 58, 58, meaning="código da carteira (7 carteira 17, 1 simples)"),
        n("registration_form", 59, 59, "1", "forma de cadastramento (1 registrada)"),
        a("document_type", 60, 60, "1", "tipo de documento (1 tradicional)"),
        n("slip_issuer", 61, 61, "2", "identificação da emissão do boleto (2 cliente)"),
        a("slip_delivery", 62, 62, "2", "identificação da distribuição (2 cliente)"),
        a("document_number", 63, 77, meaning="número do documento de cobrança (seu número)"),
        # Corrected from BB 2017, segment P: 23.3P (106) "informar 'branco'"; 38.3P (224)
        # and 39.3P (225-227) "campo não tratado, informar 'zeros'": the bank writes
        # off after the term registered for the carteira (laravel-boleto Bb.php agrees).
        *_p_charge_terms(agency_digit="", write_off_code="0", write_off_days="0"),
        n("contract", 230, 239, "0", "nº do contrato da operação de crédito"),
        blank(240, 240),
    ),
)

BB_SEGMENT_T = RecordLayout(
    "Banco do Brasil segment T",
    (
        *_detail_head("T"),
        *_bb_account(18),
        a("nosso_numero", 38, 57, meaning="identificação do título no banco (nosso número)"),
        n("wallet_code", 58, 58, meaning="código da carteira"),
        a("document_number", 59, 73, meaning="número do documento de cobrança"),
        n("due_date", 74, 81, meaning="data do vencimento do título"),
        n("amount", 82, 96, meaning="valor nominal do título"),
        n("collecting_bank", 97, 99, meaning="número do banco cobrador/recebedor"),
        n("collecting_agency", 100, 104, meaning="agência cobradora/recebedora"),
        a("collecting_agency_digit", 105, 105, meaning="DV da agência cobradora"),
        a("company_reference", 106, 130, meaning="identificação do título na empresa"),
        n("currency", 131, 132, meaning="código da moeda"),
        n("payer_document_type", 133, 133, meaning="tipo de inscrição do pagador"),
        d("payer_document", 134, 148, "número de inscrição do pagador"),
        a("payer_name", 149, 188, meaning="nome do pagador"),
        a("contract", 189, 198, meaning="nº do contrato da operação de crédito"),
        n("fee", 199, 213, meaning="valor da tarifa/custas"),
        a("reasons", 214, 223, meaning="motivo da ocorrência (cinco códigos de 2)"),
        blank(224, 240),
    ),
)

BB_BATCH_TRAILER = RecordLayout(
    "Banco do Brasil batch trailer",
    (
        *_control("5"),
        blank(9, 17),
        n("record_count", 18, 23, meaning="quantidade de registros no lote"),
        # Corrected from BB 2017, trailer de lote: 06.5 (24-240) is FEBRABAN's filler,
        # no totals by carteira (laravel-boleto Bb.php writes blanks there too).
        blank(24, 240),
    ),
)

BB_FILE_TRAILER = RecordLayout(
    "Banco do Brasil file trailer",
    (
        *_FILE_TRAILER_HEAD,
        n("account_count", 30, 35, "0", "qtde de contas p/ conc."),
        blank(36, 240),
    ),
)

SEGMENT_Q = RecordLayout("segment Q", _SEGMENT_Q)
SEGMENT_R = RecordLayout("segment R", _SEGMENT_R)
# Corrected from CAIXA 67.118 3.5.6 (20.3R, 21.3R; kmee/cnab240 segmento_r.json agrees):
# CAIXA has no débito automático fields: 180-229 are its own filler and 230-240
# FEBRABAN's, both spaces (FEBRABAN's 200-231 zeros were written there before).
CAIXA_SEGMENT_R = RecordLayout(
    "CAIXA segment R",
    (*_SEGMENT_R[:19], blank(180, 229, "uso exclusivo CAIXA"), blank(230, 240)),
)
SEGMENT_U = RecordLayout("segment U", _SEGMENT_U)


@dataclass(frozen=True)
class BankLayout:
    """Every record of one bank's CNAB 240 cobrança layout, and how it numbers titles."""

    key: str  # the boleto layout it goes with (BOLETO_LAYOUT)
    bank_code: str
    bank_name: str
    file_header: RecordLayout
    batch_header: RecordLayout
    segment_p: RecordLayout
    segment_q: RecordLayout
    segment_r: RecordLayout
    segment_t: RecordLayout
    segment_u: RecordLayout
    batch_trailer: RecordLayout
    file_trailer: RecordLayout
    species: str = "02"  # espécie do título: 02 duplicata mercantil
    # prazo para baixa/devolução after the due date; None where the layout fixes it
    write_off_days: int | None = 90

    def record(self, segment: str) -> RecordLayout:
        return {
            "P": self.segment_p, "Q": self.segment_q, "R": self.segment_r,
            "T": self.segment_t, "U": self.segment_u,
        }[segment]  # fmt: skip


CAIXA_SIGCB = BankLayout(
    key="caixa_sigcb",
    bank_code="104",
    bank_name="CAIXA",
    file_header=CAIXA_FILE_HEADER,
    batch_header=CAIXA_BATCH_HEADER,
    segment_p=CAIXA_SEGMENT_P,
    segment_q=SEGMENT_Q,
    segment_r=CAIXA_SEGMENT_R,
    segment_t=CAIXA_SEGMENT_T,
    segment_u=SEGMENT_U,
    batch_trailer=CAIXA_BATCH_TRAILER,
    file_trailer=CAIXA_FILE_TRAILER,
)

BB_CONVENIO7 = BankLayout(
    key="bb_convenio7",
    bank_code="001",
    bank_name="Banco do Brasil",
    file_header=BB_FILE_HEADER,
    batch_header=BB_BATCH_HEADER,
    segment_p=BB_SEGMENT_P,
    segment_q=SEGMENT_Q,
    segment_r=SEGMENT_R,
    segment_t=BB_SEGMENT_T,
    segment_u=SEGMENT_U,
    batch_trailer=BB_BATCH_TRAILER,
    file_trailer=BB_FILE_TRAILER,
    write_off_days=None,  # BB 2017 39.3P: zeros, the carteira's term applies
)

BANK_LAYOUTS = {layout.key: layout for layout in (CAIXA_SIGCB, BB_CONVENIO7)}

# Movement codes sent in a remessa (FEBRABAN C004).
MOVEMENT_REGISTER = "01"  # entrada de títulos
MOVEMENT_WRITE_OFF = "02"  # pedido de baixa

# Occurrence codes of a retorno (FEBRABAN C044) and what they mean.
OCCURRENCES = {
    "02": "Entrada confirmada",
    "03": "Entrada rejeitada",
    "04": "Transferência de carteira/entrada",
    "05": "Transferência de carteira/baixa",
    "06": "Liquidação",
    "07": "Confirmação do recebimento da instrução de desconto",
    "08": "Confirmação do recebimento do cancelamento do desconto",
    "09": "Baixa",
    "11": "Títulos em carteira (em ser)",
    "12": "Confirmação recebimento instrução de abatimento",
    "13": "Confirmação recebimento instrução de cancelamento abatimento",
    "14": "Confirmação recebimento instrução alteração de vencimento",
    "17": "Liquidação após baixa ou liquidação título não registrado",
    "19": "Confirmação recebimento instrução de protesto",
    "20": "Confirmação recebimento instrução de sustação/cancelamento de protesto",
    "23": "Remessa a cartório (aponte em cartório)",
    "24": "Retirada de cartório e manutenção em carteira",
    "25": "Protestado e baixado (baixa por ter sido protestado)",
    "26": "Instrução rejeitada",
    "27": "Confirmação do pedido de alteração de outros dados",
    "28": "Débito de tarifas/custas",
    "29": "Ocorrências do pagador",
    "30": "Alteração de dados rejeitada",
}
OCCURRENCE_REGISTERED = ("02",)
OCCURRENCE_REJECTED = ("03",)
OCCURRENCE_LIQUIDATED = ("06", "17")
OCCURRENCE_WRITTEN_OFF = ("09", "25")

# Reasons of a rejection (FEBRABAN C047, for occurrences 03, 26 and 30).
REJECTION_REASONS = {
    "01": "Código do banco inválido",
    "02": "Código do registro detalhe inválido",
    "03": "Código do segmento inválido",
    "04": "Código de movimento não permitido para carteira",
    "05": "Código de movimento inválido",
    "06": "Tipo/número de inscrição do beneficiário inválidos",
    "07": "Agência/conta/DV inválido",
    "08": "Nosso número inválido",
    "09": "Nosso número duplicado",
    "10": "Carteira inválida",
    "11": "Forma de cadastramento do título inválido",
    "12": "Tipo de documento inválido",
    "13": "Identificação da emissão do boleto inválida",
    "14": "Identificação da distribuição do boleto inválida",
    "15": "Características da cobrança incompatíveis",
    "16": "Data de vencimento inválida",
    "17": "Data de vencimento anterior a data de emissão",
    "18": "Vencimento fora do prazo de operação",
    "20": "Valor do título inválido",
    "21": "Espécie do título inválida",
    "22": "Espécie do título não permitida para a carteira",
    "23": "Aceite inválido",
    "24": "Data da emissão inválida",
    "25": "Data da emissão posterior a data de entrada",
    "26": "Código de juros de mora inválido",
    "27": "Valor/taxa de juros de mora inválido",
    "28": "Código do desconto inválido",
    "29": "Valor do desconto maior ou igual ao valor do título",
    "30": "Desconto a conceder não confere",
    "33": "Valor do abatimento inválido",
    "37": "Código para protesto inválido",
    "38": "Prazo para protesto inválido",
    "42": "Código para baixa/devolução inválido",
    "43": "Prazo para baixa/devolução inválido",
    "44": "Código da moeda inválido",
    "45": "Nome do pagador não informado",
    "46": "Tipo/número de inscrição do pagador inválidos",
    "47": "Endereço do pagador não informado",
    "48": "CEP inválido",
    "49": "CEP sem praça de cobrança (não localizado)",
    "52": "Unidade da federação inválida",
    "57": "Código da multa inválido",
    "58": "Data da multa inválida",
    "59": "Valor/percentual da multa inválido",
    "60": "Movimento para título não cadastrado",
    "63": "Entrada para título já cadastrado",
}


def rejection_text(reasons: str) -> str:
    """The bank's reasons (up to five 2-digit codes) as a sentence: "48 CEP inválido"."""
    codes = [reasons[i : i + 2] for i in range(0, len(reasons), 2)]
    named = [
        f"{code} {REJECTION_REASONS.get(code, 'motivo não catalogado')}"
        for code in codes
        if code.strip() and code not in ("00",)
    ]
    return "; ".join(named) or "no reason given"
