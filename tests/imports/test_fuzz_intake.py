"""Hostile and broken debtor files, and hostile webhook bodies: property tests and the
named cases (random bytes, mutated real CSVs, every encoding, huge fields, NUL bytes,
10,000 columns, a 50 MB single line).

Every file ends as a refusal (FileRefused, one sentence) or as per-row reasons, never as
another exception; through the real import a refused file writes no debtor or charge.
Every signed webhook body gets a 2xx or a 4xx. A few seconds of Hypothesis here;
`python -m bench.fuzz_intake` runs the same properties for minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from bench.fuzz_intake import (
    ENCODINGS,
    SAMPLE_FILES,
    check_file,
    debtor_files,
    webhook_bodies,
)
from billing.core.settings import Settings
from billing.entrypoints.api import create_app, signature
from billing.imports.reading import REQUIRED_COLUMNS, read_debtor_file
from billing.imports.service import import_file
from billing.imports.validation import DEBT_ID_TOO_LONG, GOVERNMENT_ID_TOO_LONG, validate_rows
from tests.support.actors import OPERATOR
from tests.support.debtor_files import HEADER

ROW = "Ana Souza,529.982.247-25,ana@example.com,1000.00,2030-01-31,D-1"
SECRET = "fuzz-webhook-secret-0123456789abcdef-x"
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- Reading and validation, no database -------------------------------------------------


@FAST
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused_or_read(data: bytes) -> None:
    check_file(data)


@pytest.mark.slow
@FAST
@given(data=debtor_files())
def test_mutated_real_files_are_refused_or_read(data: bytes) -> None:
    check_file(data)


@pytest.mark.slow
@FAST
@given(text_value=st.text(min_size=1, max_size=60), encoding=st.sampled_from(ENCODINGS))
def test_a_file_in_any_encoding_is_refused_or_read(text_value: str, encoding: str) -> None:
    line = f"{HEADER}\n{text_value},529.982.247-25,ana@example.com,1,2030-01-31,D-1\n"
    check_file(line.encode(encoding, errors="replace"))


def test_every_sample_file_reads() -> None:
    for data in SAMPLE_FILES:
        outcome = check_file(data)
        assert outcome.rows > 0, outcome


def many_columns(count: int, *, name: str = "x") -> bytes:
    header = HEADER + "".join(f",{name}{n}" for n in range(count - len(REQUIRED_COLUMNS)))
    row = ROW + "," * (count - len(REQUIRED_COLUMNS))
    return f"{header}\n{row}\n".encode()


NAMED_FILES = [
    pytest.param(b"x" * 50_000_000, "longer than 64 KB", id="50-MB-single-line"),
    pytest.param(f"{HEADER}\n".encode() + b"y" * 50_000_000, "longer than", id="50-MB-row"),
    pytest.param(
        f"{HEADER}\nAna,".encode() + b"9" * 50_000_000 + b",a@b.co,1,2030-01-31,D-1\n",
        "longer than",
        id="50-MB-field",
    ),
    pytest.param(
        f'{HEADER}\nAna,"'.encode() + b"9" * 50_000_000 + b'",a@b.co,1,2030-01-31,D-1\n',
        "longer than",
        id="50-MB-quoted-field",
    ),
    pytest.param(many_columns(10_000), None, id="10000-columns"),
    pytest.param(
        many_columns(10_000, name="extra column "), "longer than 64 KB", id="10000-long-names"
    ),
    pytest.param(
        many_columns(10_000).split(b"\n")[0] + f"\n{ROW}\n".encode(),
        "Line 2 has 6 fields, the header has 10000",
        id="10000-columns-short-row",
    ),
    pytest.param(f"{HEADER}\n{ROW}\x00\n".encode(), "binary data", id="NUL-early"),
    pytest.param(
        f"{HEADER}\n".encode() + f"{ROW}\n".encode() * 3000 + b"A\x00B,1,a@b.co,1,2030-01-31,Z\n",
        "Line 3002",
        id="NUL-in-a-value-past-64-KB",
    ),
    pytest.param(
        f"{HEADER}\n".encode() + f"{ROW}\n".encode() * 3000 + b"\x00\x00\x00\n",
        "Line 3002",
        id="NUL-line-past-64-KB",
    ),
    pytest.param(HEADER.encode(), "header but no rows", id="header-without-line-break"),
    pytest.param(b"\xef\xbb\xbf\r\n" + HEADER.encode(), "header but no rows", id="bom-header"),
    pytest.param(
        f"{HEADER}\nAna,{'5' * 3000},a@b.co,1,2030-01-31,D-1\n".encode(),
        None,
        id="huge-government-id",
    ),
]


@pytest.mark.parametrize(("data", "refusal"), NAMED_FILES)
def test_named_hostile_files(data: bytes, refusal: str | None) -> None:
    outcome = check_file(data, max_bytes=250 * 1024 * 1024)
    if refusal is None:
        assert outcome.refusal is None, outcome
    else:
        assert outcome.refusal is not None and refusal in outcome.refusal, outcome


# --- Through the real import: a refusal writes nothing, huge values never break the load ---


def counts(db: Engine) -> tuple[int, int]:
    with db.connect() as conn:
        return (
            conn.execute(text("SELECT count(*) FROM debtors")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM charges")).scalar_one(),
        )


HUGE = "Z" * 20_000
HUGE_VALUES = [
    pytest.param(f"{HUGE},52998224725,a@b.co,1,2030-01-31,D-1", id="huge-name"),
    pytest.param(f"Ana,{'5' * 20_000},a@b.co,1,2030-01-31,D-1", id="huge-government-id"),
    pytest.param(f"Ana,52998224725,a@b.co,1,2030-01-31,{HUGE}", id="huge-debt-id"),
    pytest.param(f"Ana,52998224725,{'a' * 60}@{'b' * 60}.co,1,2030-01-31,D-1", id="long-email"),
    pytest.param("Ana\x01\x1b[31m,52998224725,a@b.co,1,2030-01-31,D-\x7f", id="control-chars"),
]


@pytest.mark.parametrize("row", HUGE_VALUES)
@pytest.mark.parametrize("lenient", [True, False], ids=["lenient", "strict"])
def test_huge_or_odd_values_import_or_are_rejected_by_row(
    db: Engine, row: str, lenient: bool
) -> None:
    data = f"{HEADER}\n{row}\nBia,11144477735,bia@b.co,2,2030-01-31,D-2\n".encode()

    result = import_file(
        engine=db, actor=OPERATOR, data=data, file_name="odd.csv", lenient_documents=lenient
    )

    assert result.status == "done", result
    assert result.imported + result.rejected == 2
    assert counts(db)[1] == result.imported >= 1


@pytest.mark.parametrize(("data", "refusal"), [p for p in NAMED_FILES if p.values[1]])
def test_a_refused_hostile_file_writes_nothing(db: Engine, data: bytes, refusal: str) -> None:
    result = import_file(
        engine=db, actor=OPERATOR, data=data, file_name="hostile.csv", lenient_documents=True
    )

    assert result.status == "refused" and refusal in (result.error or ""), result
    assert counts(db) == (0, 0)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=debtor_files())
def test_a_mutated_file_through_the_import_is_refused_whole_or_loaded_whole(
    db: Engine, data: bytes
) -> None:
    before = counts(db)
    outcome = check_file(data)
    result = import_file(
        engine=db, actor=OPERATOR, data=data, file_name="mutated.csv", lenient_documents=True
    )
    if outcome.refusal is not None:
        assert (result.status, result.error) == ("refused", outcome.refusal)
        assert counts(db) == before
    else:
        assert result.status == "done", result
        assert result.rejected == outcome.rejected
        assert counts(db)[1] == before[1] + result.imported


# --- The webhook's JSON: any signed body gets a 2xx or a 4xx --------------------------------


@pytest.fixture(scope="module")
def webhook(engine: Engine) -> Iterator[httpx.Client]:
    app = create_app(
        settings=Settings(webhook_secret=SECRET, timezone="America/Sao_Paulo"), engine=engine
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def fuzz_charges(engine: Engine, owner_engine: Engine) -> None:
    """Charges the fuzzed bodies may name (W-1..W-5), created once for the module."""
    with owner_engine.begin() as conn:
        conn.execute(text("TRUNCATE payments, notices, charges, debtors CASCADE"))
    lines = [HEADER] + [
        f"Ana {n},{n:011d},ana@example.com,{n}00.00,2030-01-31,W-{n}" for n in range(1, 6)
    ]
    result = import_file(
        engine=engine,
        actor=OPERATOR,
        data="\n".join(lines).encode(),
        file_name="w.csv",
        lenient_documents=True,
    )
    assert result.imported == 5, result


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=webhook_bodies())
def test_any_signed_body_gets_a_2xx_or_a_4xx(
    webhook: httpx.Client, fuzz_charges: None, body: bytes
) -> None:
    response = webhook.post(
        "/webhooks/payments",
        content=body,
        headers={"Content-Type": "application/json", "X-Signature": signature(body, SECRET)},
    )
    assert 200 <= response.status_code < 500, (body[:300], response.text)
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.endswith(".") and len(detail) <= 300, detail
    else:
        assert response.json()["status"] in {"recorded", "duplicate"}
        assert Decimal(response.json()["paidTotal"]) > 0


# --- What fuzzing found, fixed in billing/imports/reading.py and validation.py ---


@pytest.mark.parametrize("lenient", [True, False], ids=["lenient", "strict"])
def test_an_identifier_too_long_for_an_index_is_a_reason_of_its_row(lenient: bool) -> None:
    """It used to reach the database and fail the whole import (an index row too large)."""
    data = (
        f"{HEADER}\n"
        f"Ana,52998224725,a@b.co,1,2030-01-31,{'D' * 101}\n"
        f"Bia,{'1' * 101},b@b.co,1,2030-01-31,D-2\n"
        f"Caio,11144477735,c@b.co,1,2030-01-31,{'D' * 100}\n"
    ).encode()

    rows = validate_rows(read_debtor_file(data, max_bytes=10**6), lenient_documents=lenient)

    assert rows.rejected.column("reasons").to_pylist() == [DEBT_ID_TOO_LONG, GOVERNMENT_ID_TOO_LONG]
    assert rows.valid.column("line").to_pylist() == [4]


def test_a_header_with_accents_is_recognised() -> None:
    data = "Nome;CPF;E-mail;Valor;Vencimento;Id da Dívida\nAna;1;a@b.co;1;2030-01-31;D-1\n"
    assert read_debtor_file(data.encode(), max_bytes=10**6).row_count == 1
