"""Static Pix BR Code: CRC known answers, building the BCB example, parse round trips."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.boletos.pix import (
    PixPayload,
    ascii_fold,
    crc16_ccitt,
    is_valid_pix_payload,
    parse_pix_payload,
    pix_payload,
)

EXAMPLE_WITHOUT_CRC = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***6304"
)
EXAMPLE_KEY = "123e4567-e12b-12d1-a456-426655440000"


def test_crc16_ccitt_false_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE over "123456789".
    assert crc16_ccitt(b"123456789") == "29B1"


def test_crc_of_bcb_example() -> None:
    assert crc16_ccitt(EXAMPLE_WITHOUT_CRC.encode("ascii")) == "1D3D"


def test_builds_the_bcb_example_from_fields() -> None:
    payload = pix_payload(
        key=EXAMPLE_KEY,
        merchant_name="Fulano de Tal",
        merchant_city="BRASILIA",
        amount=None,
    )
    assert payload == EXAMPLE_WITHOUT_CRC + "1D3D"


def test_parses_the_bcb_example() -> None:
    assert parse_pix_payload(EXAMPLE_WITHOUT_CRC + "1D3D") == PixPayload(
        key=EXAMPLE_KEY,
        merchant_name="Fulano de Tal",
        merchant_city="BRASILIA",
        amount=None,
        txid="***",
    )


def test_round_trip_with_amount_txid_and_description() -> None:
    payload = pix_payload(
        key="fundo@example.com",
        merchant_name="Fundo de Crédito São João",
        merchant_city="São Paulo",
        amount=Decimal("2952.95"),
        txid="DIV2025000123",
        description="Boleto 123",
    )
    assert "54072952.95" in payload
    assert "62170513DIV2025000123" in payload
    assert is_valid_pix_payload(payload)
    assert parse_pix_payload(payload) == PixPayload(
        key="fundo@example.com",
        merchant_name="Fundo de Credito Sao Joao",
        merchant_city="Sao Paulo",
        amount=Decimal("2952.95"),
        txid="DIV2025000123",
        description="Boleto 123",
    )


def test_amount_is_written_with_two_decimals() -> None:
    payload = pix_payload(key="k", merchant_name="A", merchant_city="B", amount=Decimal(10))
    assert "540510.00" in payload


def test_name_and_city_are_folded_and_cut() -> None:
    payload = parse_pix_payload(
        pix_payload(
            key="k",
            merchant_name="Fundo de Investimento em Direitos Creditórios Ação",
            merchant_city="Santa Bárbara d'Oeste",
            amount=None,
        )
    )
    assert (
        payload.merchant_name == "Fundo de Investimento em"
    )  # 25 characters, trailing space dropped
    assert payload.merchant_city == "Santa Barbara d"


@pytest.mark.parametrize(
    ("text", "folded"),
    [("José Açaí", "Jose Acai"), ("Ñandú ß", "Nandu "), ("ok", "ok")],
)
def test_ascii_fold(text: str, folded: str) -> None:
    assert ascii_fold(text) == folded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"txid": "DIV-123"}, "txid"),
        ({"txid": "A" * 26}, "txid"),
        ({"amount": Decimal(0)}, "positive"),
        ({"amount": Decimal(-1)}, "positive"),
        ({"amount": Decimal("1.005")}, "fractions of a cent"),
        ({"key": ""}, "Pix key"),
        ({"key": "k" * 78}, "Pix key"),
        ({"merchant_city": "  "}, "must not be empty"),
    ],
)
def test_refuses_bad_fields(changes: dict, message: str) -> None:
    fields = {
        "key": "k",
        "merchant_name": "A",
        "merchant_city": "B",
        "amount": Decimal("1.00"),
    } | changes
    with pytest.raises(ValueError, match=message):
        pix_payload(**fields)


@pytest.mark.parametrize(
    "payload",
    [
        EXAMPLE_WITHOUT_CRC + "1D3E",  # wrong CRC
        EXAMPLE_WITHOUT_CRC.replace("Fulano", "Fulana") + "1D3D",  # tampered body
        EXAMPLE_WITHOUT_CRC[:-4],  # no CRC at all
        "",
    ],
)
def test_invalid_payloads(payload: str) -> None:
    assert not is_valid_pix_payload(payload)


def test_lowercase_crc_is_accepted() -> None:
    assert is_valid_pix_payload(EXAMPLE_WITHOUT_CRC + "1d3d")


def test_payload_without_pix_key_is_refused() -> None:
    body = "000201520400005303986" + "5802BR5901A6001B62070503***6304"
    with pytest.raises(ValueError, match="no Pix key"):
        parse_pix_payload(body + crc16_ccitt(body.encode()))
