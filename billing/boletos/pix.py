"""Static Pix BR Code ("copia e cola"): the EMV MPM payload printed beside a boleto.

Follows the Banco Central's "Manual de Padrões para Iniciação do Pix" (BR Code,
EMV Merchant-Presented Mode TLV): each field is a 2-digit ID, a 2-digit length
and the value; the payload ends with a CRC16-CCITT-FALSE over everything
before the CRC's value, "6304" included.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

PIX_GUI = "br.gov.bcb.pix"
MAX_KEY_LENGTH = 77
MAX_NAME_LENGTH = 25
MAX_CITY_LENGTH = 15
MAX_TXID_LENGTH = 25
NO_TXID = "***"
_TXID = re.compile(r"[A-Za-z0-9]{1,25}")
_AMOUNT = re.compile(r"\d{1,10}(\.\d{1,2})?")


@dataclass(frozen=True)
class PixPayload:
    """The fields of a static BR Code, as read back from a payload."""

    key: str
    merchant_name: str
    merchant_city: str
    amount: Decimal | None
    txid: str
    description: str | None = None


def crc16_ccitt(data: bytes) -> str:
    """CRC16-CCITT-FALSE (poly 0x1021, init 0xFFFF) as 4 uppercase hex digits."""
    return f"{binascii.crc_hqx(data, 0xFFFF):04X}"


def ascii_fold(text: str) -> str:
    """Drop accents and anything outside printable ASCII: "São Paulo" -> "Sao Paulo"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if " " <= c <= "~")


def _tlv(tag: str, value: str) -> str:
    if len(value) > 99:
        raise ValueError(f"Pix field {tag} is {len(value)} characters long; the limit is 99")
    return f"{tag}{len(value):02d}{value}"


def _amount_text(amount: Decimal) -> str:
    if amount <= 0:
        raise ValueError(f"Pix amount must be positive, got {amount}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"Pix amount {amount} has fractions of a cent")
    text = f"{amount:.2f}"
    if len(text) > 13:
        raise ValueError(f"Pix amount {amount} is too large")
    return text


def pix_payload(
    *,
    key: str,
    merchant_name: str,
    merchant_city: str,
    amount: Decimal | None,
    txid: str = NO_TXID,
    description: str | None = None,
) -> str:
    """The copia-e-cola text of a static Pix charge.

    Name and city are ASCII-folded and cut to 25 and 15 characters, as the BR
    Code allows; a key, txid or description that does not fit raises
    ValueError rather than being cut, since cutting would change who is paid
    or how the payment is matched.
    """
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"Pix key must have 1..{MAX_KEY_LENGTH} characters, got {key!r}")
    if txid != NO_TXID and not _TXID.fullmatch(txid):
        raise ValueError(f"Pix txid must be {NO_TXID!r} or 1..25 letters and digits, got {txid!r}")
    name = ascii_fold(merchant_name).strip()[:MAX_NAME_LENGTH].strip()
    city = ascii_fold(merchant_city).strip()[:MAX_CITY_LENGTH].strip()
    if not name or not city:
        raise ValueError("Pix merchant name and city must not be empty")

    account = _tlv("00", PIX_GUI) + _tlv("01", key)
    if description:
        account += _tlv("02", ascii_fold(description).strip())
    payload = (
        _tlv("00", "01")
        + _tlv("26", account)
        + _tlv("52", "0000")
        + _tlv("53", "986")
        + (_tlv("54", _amount_text(amount)) if amount is not None else "")
        + _tlv("58", "BR")
        + _tlv("59", name)
        + _tlv("60", city)
        + _tlv("62", _tlv("05", txid))
        + "6304"
    )
    return payload + crc16_ccitt(payload.encode("ascii"))


def _read_tlv(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    position = 0
    while position < len(text):
        header = text[position : position + 4]
        if len(header) < 4 or not header.isdigit():
            raise ValueError(f"malformed BR Code field at position {position}")
        tag, length = header[:2], int(header[2:])
        value = text[position + 4 : position + 4 + length]
        if len(value) != length:
            raise ValueError(f"BR Code field {tag} is cut short")
        if tag in fields:
            raise ValueError(f"BR Code field {tag} appears twice")
        fields[tag] = value
        position += 4 + length
    return fields


def parse_pix_payload(payload: str) -> PixPayload:
    """Read a static BR Code, checking its CRC and the fields Pix requires."""
    if not payload.isascii():
        raise ValueError("a BR Code is ASCII text")
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise ValueError("BR Code must end with the CRC field 6304XXXX")
    expected = crc16_ccitt(payload[:-4].encode("ascii"))
    if payload[-4:].upper() != expected:
        raise ValueError(f"BR Code CRC is {payload[-4:]}, expected {expected}")
    fields = _read_tlv(payload)
    if fields.get("00") != "01":
        raise ValueError("BR Code payload format indicator (00) must be 01")
    for tag, value in (("52", "0000"), ("53", "986"), ("58", "BR")):
        if fields.get(tag) != value:
            raise ValueError(f"BR Code field {tag} must be {value!r}")
    account = _read_tlv(fields.get("26", ""))
    if account.get("00", "").lower() != PIX_GUI or not account.get("01"):
        raise ValueError("BR Code has no Pix key (field 26 with GUI br.gov.bcb.pix)")
    if "59" not in fields or "60" not in fields:
        raise ValueError("BR Code lacks merchant name (59) or city (60)")
    amount = fields.get("54")
    if amount is not None and not _AMOUNT.fullmatch(amount):
        raise ValueError(f"BR Code amount {amount!r} is not like 123.45")
    txid = _read_tlv(fields.get("62", "")).get("05")
    if txid is None:
        raise ValueError("BR Code has no txid (field 62, subfield 05)")
    return PixPayload(
        key=account["01"],
        merchant_name=fields["59"],
        merchant_city=fields["60"],
        amount=Decimal(amount) if amount is not None else None,
        txid=txid,
        description=account.get("02"),
    )


def is_valid_pix_payload(payload: str) -> bool:
    """Whether a text is a well-formed static BR Code with a matching CRC."""
    try:
        parse_pix_payload(payload)
    except ValueError:
        return False
    return True
