"""CPF / CNPJ validation: scalar reference functions and the vectorised mask agree."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from billing.core.documents import (
    CNPJ_WEIGHTS,
    CPF_WEIGHTS,
    is_valid_cnpj,
    is_valid_cpf,
    is_valid_government_id,
    normalise_government_id,
    normalise_government_ids,
    valid_government_ids,
    valid_normalised_government_ids,
)

VALID_CPFS = ["529.982.247-25", "52998224725", " 529 982 247 25", "529\u00a0982\u00a0247-25"]
VALID_CNPJS = [
    "11.222.333/0001-81",
    "11222333000181",
    "12.ABC.345/01DE-35",
    "12ABC34501DE35",
    "12.abc.345/01de-35",
]
INVALID_IDS = [
    pytest.param("529.982.247-24", id="cpf-wrong-second-digit"),
    pytest.param("529.982.247-15", id="cpf-wrong-first-digit"),
    pytest.param("111.111.111-11", id="cpf-all-equal"),
    pytest.param("000.000.000-00", id="cpf-all-zero"),
    pytest.param("5299822472", id="cpf-10-digits"),
    pytest.param("529982247255", id="cpf-12-digits"),
    pytest.param("529.982.247-2A", id="cpf-letter-in-check-digit"),
    pytest.param("52998224A25", id="cpf-letter-in-base"),
    pytest.param("11.222.333/0001-80", id="cnpj-wrong-second-digit"),
    pytest.param("11.222.333/0001-91", id="cnpj-wrong-first-digit"),
    pytest.param("00.000.000/0000-00", id="cnpj-all-zero"),
    pytest.param("11.111.111/1111-11", id="cnpj-all-equal"),
    pytest.param("12.ABC.345/01DE-36", id="alnum-cnpj-wrong-digit"),
    pytest.param("12.ABC.345/01DE-3A", id="alnum-cnpj-letter-in-check-digit"),
    pytest.param("12.ABÇ.345/01DE-35", id="non-ascii-letter"),
    pytest.param("1122233300018", id="cnpj-13-chars"),
    pytest.param("", id="empty"),
    pytest.param("---", id="punctuation-only"),
    pytest.param("not a document", id="text"),
]


@pytest.mark.parametrize("value", VALID_CPFS)
def test_valid_cpf(value: str) -> None:
    assert is_valid_cpf(value)
    assert not is_valid_cnpj(value)
    assert is_valid_government_id(value)


@pytest.mark.parametrize("value", VALID_CNPJS)
def test_valid_cnpj(value: str) -> None:
    assert is_valid_cnpj(value)
    assert not is_valid_cpf(value)
    assert is_valid_government_id(value)


@pytest.mark.parametrize("value", INVALID_IDS)
def test_invalid_government_id(value: str) -> None:
    assert not is_valid_government_id(value)
    assert not valid_government_ids(pa.array([value]))[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("529.982.247-25", "52998224725"),
        ("12.abc.345/01de-35", "12ABC34501DE35"),
        ("11 222 333/0001-81", "11222333000181"),
        ("529\u00a0982\u00a0247\t25", "52998224725"),
        ("Conceição", "CONCEIÇÃO"),
        ("---", ""),
        ("", ""),
    ],
)
def test_normalise_government_id(value: str, expected: str) -> None:
    assert normalise_government_id(value) == expected
    assert normalise_government_ids(pa.array([value])).to_pylist() == [expected]


def test_vectorised_mask_marks_the_right_rows() -> None:
    values = pa.chunked_array(
        [["529.982.247-25", None, "x"], ["12.ABC.345/01DE-35", "111.111.111-11"], []]
    )
    assert valid_government_ids(values).tolist() == [True, False, False, True, False]
    assert normalise_government_ids(values).to_pylist() == [
        "52998224725",
        None,
        "X",
        "12ABC34501DE35",
        "11111111111",
    ]


def test_vectorised_mask_of_a_sliced_array() -> None:
    values = pa.array(["x", "529.982.247-25", "11222333000181", "y"]).slice(1, 2)
    assert valid_government_ids(values).tolist() == [True, True]


def test_empty_array() -> None:
    assert valid_government_ids(pa.array([], pa.string())).tolist() == []
    assert normalise_government_ids(pa.array([], pa.string())).to_pylist() == []


def _with_check_digits(base: str, weights: tuple[tuple[int, ...], tuple[int, ...]]) -> str:
    for digit_weights in weights:
        remainder = sum((ord(c) - 48) * w for c, w in zip(base, digit_weights, strict=True)) % 11
        base += str(0 if remainder < 2 else 11 - remainder)
    return base


def test_vectorised_agrees_with_scalar_on_random_identifiers() -> None:
    rng = np.random.default_rng(2026)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    values: list[str] = []
    for _ in range(2000):
        cpf = _with_check_digits("".join(rng.choice(list("0123456789"), 9)), CPF_WEIGHTS)
        cnpj = _with_check_digits("".join(rng.choice(list(alphabet), 12)), CNPJ_WEIGHTS)
        for value in (cpf, cnpj):
            values.append(value)
            position = int(rng.integers(len(value)))  # one changed digit: usually invalid
            values.append(value[:position] + str(int(rng.integers(10))) + value[position + 1 :])
        values.append(f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}")
        values.append("".join(rng.choice(list(alphabet + ".-/ "), int(rng.integers(0, 16)))))
    expected = [is_valid_government_id(value) for value in values]
    assert valid_government_ids(pa.array(values)).tolist() == expected
    assert sum(expected) > 4000  # the sample does contain many valid ones


def test_valid_normalised_expects_normalised_input() -> None:
    assert valid_normalised_government_ids(pa.array(["52998224725"])).tolist() == [True]
    assert valid_normalised_government_ids(pa.array(["529.982.247-25"])).tolist() == [False]
