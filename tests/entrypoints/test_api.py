"""The HTTP API over real HTTP: uvicorn on a free port, the test database, httpx."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import Engine, text

from billing.core.errors import OperatorError
from billing.core.settings import Settings
from billing.entrypoints.api import MAX_WEBHOOK_BYTES, create_app, signature
from billing.imports.reading import REQUIRED_COLUMNS
from tests.support.api_server import (
    CLI_SECRET,
    SECRET,
    TOKEN,
    count_payments,
    payment_body,
)
from tests.support.api_server import base_url as base_url  # the served API (a fixture)
from tests.support.database import scalar
from tests.support.debtor_files import import_charges
from tests.support.network import free_port


@pytest.fixture()
def client(base_url: str, db: Engine) -> Iterator[httpx.Client]:
    """An HTTP client, on emptied tables."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def post_payment(
    client: httpx.Client, body: bytes, *, sign_with: str | None = SECRET
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if sign_with is not None:
        headers["X-Signature"] = signature(body, sign_with)
    return client.post("/webhooks/payments", content=body, headers=headers)


def charge_status(db: Engine, debt_id: str = "8291") -> str:
    return scalar(db, "SELECT status FROM charges WHERE debt_id = :d", d=debt_id)


def test_a_signed_payment_pays_the_charge(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))

    response = post_payment(client, payment_body())

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "recorded"
    assert answer["chargeStatus"] == "paid"
    assert answer["paidTotal"] == "100000.00"
    assert answer["overpaidAmount"] == "0.00"
    assert charge_status(db) == "paid"
    payload = scalar(db, "SELECT payload FROM payments")
    assert payload == json.loads(payment_body())  # the body as the bank sent it


def test_the_same_payment_twice_is_recorded_once(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))

    first = post_payment(client, payment_body())
    again = post_payment(client, payment_body())

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == "recorded"
    assert again.json() | {"status": "recorded"} == first.json() | {"previousStatus": "paid"}
    assert again.json()["status"] == "duplicate"
    assert count_payments(db) == 1


def test_a_partial_payment_then_the_rest(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))

    partial = post_payment(client, payment_body(amount="40000.00"))
    assert partial.json()["chargeStatus"] == "partially_paid"
    assert partial.json()["outstanding"] == "60000.00"
    assert charge_status(db) == "partially_paid"

    rest = post_payment(client, payment_body(amount="60000", paid_at="2022-06-10T09:00:00-03:00"))
    assert rest.json()["chargeStatus"] == "paid"
    assert charge_status(db) == "paid"
    assert count_payments(db) == 2


def test_an_overpayment_is_recorded_and_reported(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100.00"))

    response = post_payment(client, payment_body(amount="150.25"))

    assert response.status_code == 200
    assert response.json()["chargeStatus"] == "paid"
    assert response.json()["overpaidAmount"] == "50.25"
    assert response.json()["note"] == "Overpaid by 50.25."
    assert scalar(db, "SELECT paid_amount FROM payments") == Decimal("150.25")


@pytest.mark.parametrize(
    ("sign_with", "header", "message"),
    [
        ("another-secret", None, "does not match"),
        (None, None, "Missing X-Signature"),
        (None, "", "Missing X-Signature"),
        (None, "sha256=", "does not match"),
        (None, "sha256=" + "0" * 64, "does not match"),
        (None, "md5=abc", "does not match"),
        (None, b"sha256=\xe9", "does not match"),  # not ASCII
    ],
)
def test_unsigned_or_badly_signed_payments_are_refused(
    client: httpx.Client,
    db: Engine,
    sign_with: str | None,
    header: str | bytes | None,
    message: str,
) -> None:
    import_charges(db, ("8291", "100000.00"))
    before = charge_status(db)
    body = payment_body()
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    if sign_with:
        headers["X-Signature"] = signature(body, sign_with)
    if header is not None:
        headers["X-Signature"] = header

    response = client.post("/webhooks/payments", content=body, headers=headers)

    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert count_payments(db) == 0
    assert charge_status(db) == before


def test_the_signature_covers_the_exact_body(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))
    signed = payment_body(amount="1.00")
    tampered = payment_body(amount="100000.00")
    response = client.post(
        "/webhooks/payments", content=tampered, headers={"X-Signature": signature(signed, SECRET)}
    )
    assert response.status_code == 401
    assert count_payments(db) == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"debtId": "8291", "paidAt": ', 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"debtId": "8291", "paidAt": "2022-06-09 10:00:00", "paidBy": "J"}',
         422, "Missing field: paidAmount"),
        (b'{"debtId": "8291", "paidAt": "2022-06-09 10:00:00", "paidAmount": -1, "paidBy": "J"}',
         422, "greater than zero"),
        (b'{"debtId": "8291", "paidAt": "2022-06-09 10:00:00", "paidAmount": 0, "paidBy": "J"}',
         422, "greater than zero"),
        (b'{"debtId": "8291", "paidAt": "2022-06-31 10:00:00", "paidAmount": 1, "paidBy": "J"}',
         422, "not a valid date"),
        (b'{"debtId": "8291", "paidAt": "09/06/2022", "paidAmount": 1, "paidBy": "J"}',
         422, "paidAt"),
    ],
)  # fmt: skip
def test_unusable_payments_are_refused_with_a_reason(
    client: httpx.Client, db: Engine, body: bytes, status: int, message: str
) -> None:
    import_charges(db, ("8291", "100000.00"))

    response = post_payment(client, body)

    assert response.status_code == status
    assert message in response.json()["detail"]
    assert "Traceback" not in response.text
    assert count_payments(db) == 0


USABLE_FIELDS = {
    "debtId": '"8291"',
    "paidAt": '"2022-06-09 10:00:00"',
    "paidAmount": "100.00",
    "paidBy": '"John Doe"',
}


def notification(*members: str, **fields: str) -> bytes:
    """A payment of 100.00 for debtId 8291 with some fields given as raw JSON instead, and
    `members` (raw `"key": value` text) added at the start."""
    written = [f'"{name}": {value}' for name, value in (USABLE_FIELDS | fields).items()]
    return ("{" + ", ".join([*members, *written]) + "}").encode()


def nested(depth: int, innermost: str = "1") -> str:
    return '{"a": ' * depth + innermost + "}" * depth


# Signed correctly, yet unusable: each must get a 4xx with a sentence, never a 500.
HOSTILE_BODIES = [
    # paidAmount
    pytest.param(notification(paidAmount="1e30"), id="amount-1e30"),
    pytest.param(notification(paidAmount="1e999999999"), id="amount-huge-exponent"),
    pytest.param(notification(paidAmount="-1e999999999"), id="amount-huge-negative"),
    pytest.param(notification(paidAmount="1e-999999999"), id="amount-tiny-exponent"),
    pytest.param(notification(paidAmount="1." + "0" * 20_000), id="amount-20000-decimals"),
    pytest.param(notification(paidAmount="9" * 4000), id="amount-4000-digit-integer"),
    pytest.param(notification(paidAmount="9" * 5000), id="amount-5000-digit-integer"),
    pytest.param(notification(paidAmount="-0"), id="amount-minus-zero"),
    pytest.param(notification(paidAmount="-0.0"), id="amount-minus-zero-point-zero"),
    pytest.param(notification(paidAmount="0e99"), id="amount-zero-exponent"),
    pytest.param(notification(paidAmount="1.005"), id="amount-three-decimals"),
    pytest.param(notification(paidAmount="NaN"), id="amount-bare-nan"),
    pytest.param(notification(paidAmount="Infinity"), id="amount-bare-infinity"),
    pytest.param(notification(paidAmount="-Infinity"), id="amount-bare-minus-infinity"),
    pytest.param(notification(paidAmount='"NaN"'), id="amount-nan-string"),
    pytest.param(notification(paidAmount='"nan"'), id="amount-nan-lowercase"),
    pytest.param(notification(paidAmount='"sNaN"'), id="amount-signalling-nan"),
    pytest.param(notification(paidAmount='"-Infinity"'), id="amount-infinity-string"),
    pytest.param(notification(paidAmount='"1e30"'), id="amount-exponent-string"),
    pytest.param(notification(paidAmount='"1_000"'), id="amount-underscore-string"),
    pytest.param(notification(paidAmount='"\u0661\u0660\u0660"'), id="amount-arabic-indic-digits"),
    pytest.param(notification(paidAmount='"\uff11\uff10\uff10"'), id="amount-fullwidth-digits"),
    pytest.param(notification(paidAmount='"100\\u0000"'), id="amount-nul"),
    pytest.param(notification(paidAmount='"' + "9" * 60_000 + '"'), id="amount-long-string"),
    pytest.param(notification(paidAmount='""'), id="amount-empty"),
    pytest.param(notification(paidAmount='" "'), id="amount-blank"),
    pytest.param(notification(paidAmount="null"), id="amount-null"),
    pytest.param(notification(paidAmount="true"), id="amount-bool"),
    pytest.param(notification(paidAmount="[100]"), id="amount-list"),
    pytest.param(notification(paidAmount='{"value": 100}'), id="amount-object"),
    # debtId
    pytest.param(notification(debtId='["8291"]'), id="debt-id-list"),
    pytest.param(notification(debtId='{"id": "8291"}'), id="debt-id-object"),
    pytest.param(notification(debtId="true"), id="debt-id-true"),
    pytest.param(notification(debtId="false"), id="debt-id-false"),
    pytest.param(notification(debtId="8291.0"), id="debt-id-float"),
    pytest.param(notification(debtId="1e30"), id="debt-id-exponent"),
    pytest.param(notification(debtId="null"), id="debt-id-null"),
    pytest.param(notification(debtId='""'), id="debt-id-empty"),
    pytest.param(notification(debtId='"   "'), id="debt-id-blank"),
    pytest.param(notification(debtId='"-"'), id="debt-id-punctuation"),
    pytest.param(notification(debtId='"' + "8" * 60_000 + '"'), id="debt-id-long"),
    pytest.param(notification(debtId="8" * 4000), id="debt-id-4000-digit-integer"),
    pytest.param(notification(debtId=str(10**30)), id="debt-id-unknown-integer"),
    pytest.param(notification(debtId='"8291\\u0000"'), id="debt-id-nul"),
    pytest.param(notification(debtId='"\\ud800"'), id="debt-id-lone-surrogate"),
    pytest.param(notification(debtId='"\\udfff8291"'), id="debt-id-low-surrogate"),
    pytest.param(notification(debtId='"82\\n91"'), id="debt-id-newline"),
    pytest.param(notification(debtId='"\uff18\uff12\uff19\uff11"'), id="debt-id-fullwidth"),
    pytest.param(notification(debtId='"8291\\u200b"'), id="debt-id-zero-width-space"),
    pytest.param(notification(debtId='"\\u202e1928"'), id="debt-id-right-to-left"),
    pytest.param(notification(debtId=nested(8000)), id="debt-id-nested-8000"),
    pytest.param(notification(debtId=nested(40)), id="debt-id-nested-40"),
    # paidAt
    pytest.param(notification(paidAt='"0000-01-01 10:00:00"'), id="paid-at-year-0"),
    pytest.param(notification(paidAt='"0001-01-01T00:00:00+14:00"'), id="paid-at-year-1"),
    pytest.param(notification(paidAt='"9999-12-31T23:59:59-14:00"'), id="paid-at-year-9999"),
    pytest.param(notification(paidAt='"99999-01-01 10:00:00"'), id="paid-at-year-99999"),
    pytest.param(notification(paidAt='"2022-13-01 10:00:00"'), id="paid-at-month-13"),
    pytest.param(notification(paidAt='"2022-06-09T10:00:00+99:00"'), id="paid-at-offset-99"),
    pytest.param(notification(paidAt='"\uff12\uff10\uff12\uff12-06-09 10:00:00"'),
                 id="paid-at-fullwidth"),
    pytest.param(notification(paidAt='"2022-06-09 10:00:00\\u0000"'), id="paid-at-nul"),
    pytest.param(notification(paidAt='"2022-06-09 10:00:00' + "x" * 50_000 + '"'),
                 id="paid-at-long"),
    pytest.param(notification(paidAt="20220609"), id="paid-at-number"),
    pytest.param(notification(paidAt="1654779600"), id="paid-at-epoch"),
    pytest.param(notification(paidAt="1e999999999"), id="paid-at-huge-number"),
    pytest.param(notification(paidAt="true"), id="paid-at-bool"),
    pytest.param(notification(paidAt="null"), id="paid-at-null"),
    pytest.param(notification(paidAt='["2022-06-09 10:00:00"]'), id="paid-at-list"),
    pytest.param(notification(paidAt="{}"), id="paid-at-object"),
    # paidBy
    pytest.param(notification(paidBy='"\\u0000"'), id="paid-by-nul"),
    pytest.param(notification(paidBy='"John \\ud800"'), id="paid-by-lone-surrogate"),
    pytest.param(notification(paidBy='"\\u200b"'), id="paid-by-zero-width-space-only"),
    pytest.param(notification(paidBy='"John\\u001b[31mDoe"'), id="paid-by-escape-sequence"),
    pytest.param(notification(paidBy='"' + "J" * 60_000 + '"'), id="paid-by-long"),
    pytest.param(notification(paidBy="123"), id="paid-by-number"),
    pytest.param(notification(paidBy='["John"]'), id="paid-by-list"),
    # anything else in the body, which is stored as received
    pytest.param(notification(extra="1e999999"), id="extra-huge-number"),
    pytest.param(notification(extra="1e-20000"), id="extra-tiny-number"),
    pytest.param(notification(extra='"\\ud800"'), id="extra-lone-surrogate"),
    pytest.param(notification('"\\u0000": 1'), id="extra-nul-key"),
    pytest.param(notification('"\\udfff": 1'), id="extra-surrogate-key"),
    pytest.param(notification(extra="[" * 40 + "]" * 40), id="extra-nested-40"),
    pytest.param(notification(extra="[" * 20_000 + "]" * 20_000), id="extra-nested-20000"),
    # repeated keys: which one did the bank mean?
    pytest.param(notification('"debtId": "9999"'), id="repeated-debt-id"),
    pytest.param(notification('"paidAmount": 1'), id="repeated-amount"),
    pytest.param(notification('"debt\\u0049d": "9999"'), id="repeated-escaped-key"),
    pytest.param(notification(extra='{"a": 1, "a": 2}'), id="repeated-nested-key"),
    # not a JSON object
    pytest.param(b"", id="empty"),
    pytest.param(b" \r\n", id="whitespace"),
    pytest.param(b"null", id="top-null"),
    pytest.param(b"true", id="top-bool"),
    pytest.param(b"42", id="top-number"),
    pytest.param(b'"8291"', id="top-string"),
    pytest.param(b"[]", id="top-empty-array"),
    pytest.param(b"[" + notification() + b"]", id="top-array"),
    pytest.param(b"[" * 30_000 + b"]" * 30_000, id="top-nested-30000"),
    pytest.param(b"{" * 60_000, id="top-unbalanced"),
    pytest.param(notification() + b"x", id="trailing-garbage"),
    pytest.param(notification() + notification(), id="two-objects"),
    pytest.param(b"\xef\xbb\xbf" + notification(), id="byte-order-mark"),
    pytest.param(b"\xff\xfe" + notification(), id="utf-16-mark"),
    pytest.param(notification().replace(b"John", b"Jo\xc3\x28o"), id="invalid-utf-8-in-string"),
    pytest.param(b"\xc3\x28", id="invalid-utf-8"),
    pytest.param(notification().replace(b"John Doe", b"John\x00Doe"), id="raw-nul-byte"),
    pytest.param(notification().replace(b"John Doe", b"John\xed\xa0\x80Doe"), id="utf-8-surrogate"),
]  # fmt: skip


def test_a_usable_notification_pays(client: httpx.Client, db: Engine) -> None:
    """The hostile bodies below differ from this one only where they say."""
    import_charges(db, ("8291", "100.00"))
    response = post_payment(client, notification())
    assert response.status_code == 200, response.text
    assert count_payments(db) == 1


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_a_signed_body_that_cannot_be_used_gets_a_4xx(
    client: httpx.Client, db: Engine, body: bytes
) -> None:
    import_charges(db, ("8291", "100.00"))
    before = charge_status(db)
    assert len(body) <= MAX_WEBHOOK_BYTES  # under the size limit: the reading is tested

    response = post_payment(client, body)

    assert response.status_code in (400, 404, 422), response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith("."), detail
    assert len(detail) <= 200, detail  # a sentence, not the body quoted back
    assert count_payments(db) == 0
    assert charge_status(db) == before


def test_a_body_nested_100000_deep_is_refused_for_its_size(
    client: httpx.Client, db: Engine
) -> None:
    response = post_payment(client, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 413
    assert count_payments(db) == 0


def test_an_oversized_body_is_refused(client: httpx.Client, db: Engine) -> None:
    body = b'{"pad": "' + b"x" * 70_000 + b'"}'
    assert post_payment(client, body).status_code == 413


def test_an_unknown_debt_id_is_not_found(client: httpx.Client, db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))

    response = post_payment(client, payment_body(debt_id="9999"))

    assert response.status_code == 404
    assert "9999" in response.json()["detail"]
    assert count_payments(db) == 0


def test_concurrent_webhooks_for_one_charge_end_consistent(
    client: httpx.Client, db: Engine
) -> None:
    import_charges(db, ("8291", "100.00"))
    before = charge_status(db)
    # Ten distinct payments of 10.00, each delivered twice, all at once.
    bodies = [payment_body(amount="10.00", paid_at=f"2022-06-09 10:00:{s:02d}") for s in range(10)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda body: post_payment(client, body), bodies * 2))

    assert [r.status_code for r in responses] == [200] * 20
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 10 + ["recorded"] * 10
    assert count_payments(db) == 10
    assert charge_status(db) == "paid"
    with db.connect() as conn:
        steps = conn.execute(
            text("SELECT from_status, to_status FROM charge_events ORDER BY created_at, id")
        ).all()
    assert [tuple(step) for step in steps] == (
        [(before, "partially_paid")]
        + [("partially_paid", "partially_paid")] * 8
        + [("partially_paid", "paid")]
    )


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def debtor_csv(*debt_ids: str) -> bytes:
    lines = [",".join(REQUIRED_COLUMNS)] + [
        f"Ana Souza,not-a-cpf,ana@example.com,100.00,2030-01-31,{debt_id}" for debt_id in debt_ids
    ]
    return "\n".join(lines).encode()


def upload(client: httpx.Client, data: bytes, *, token: str | None = TOKEN, **form: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        "/debtors/upload",
        files={"file": ("folder/debtors.csv", data, "text/csv")},
        data=form,
        headers=headers,
    )


def test_an_uploaded_file_creates_charges(client: httpx.Client, db: Engine) -> None:
    response = upload(client, debtor_csv("A-1", "A-2"), lenient_documents="true")

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "done"
    assert (result["rows"], result["imported"], result["rejected"]) == (2, 2, 0)
    assert result["file_name"] == "debtors.csv"
    assert scalar(db, "SELECT count(*) FROM charges") == 2
    # A payment for a charge created by the upload.
    assert post_payment(client, payment_body(debt_id="A-1", amount="100.00")).status_code == 200


def test_an_upload_is_strict_about_documents_unless_asked(client: httpx.Client, db: Engine) -> None:
    result = upload(client, debtor_csv("A-1")).json()
    assert (result["status"], result["imported"], result["rejected"]) == ("done", 0, 1)


def test_a_binary_upload_is_refused_with_the_reason(client: httpx.Client, db: Engine) -> None:
    response = upload(client, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)

    assert response.status_code == 422
    assert response.json()["status"] == "refused"
    assert "binary" in response.json()["detail"]
    assert scalar(db, "SELECT count(*) FROM charges") == 0
    assert scalar(db, "SELECT status FROM imports") == "refused"


@pytest.mark.parametrize("token", [None, "wrong-token", SECRET])
def test_an_upload_needs_the_api_token(client: httpx.Client, db: Engine, token: str | None) -> None:
    response = upload(client, debtor_csv("A-1"), token=token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert scalar(db, "SELECT count(*) FROM imports") == 0


def test_an_upload_without_a_file_or_with_a_bad_flag(client: httpx.Client, db: Engine) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    no_file = client.post("/debtors/upload", data={"x": "1"}, headers=headers)
    assert no_file.status_code == 422
    assert "'file'" in no_file.json()["detail"]
    bad_flag = upload(client, debtor_csv("A-1"), lenient_documents="maybe")
    assert bad_flag.status_code == 422
    assert "lenient_documents" in bad_flag.json()["detail"]


@pytest.mark.parametrize(
    ("webhook_secret", "api_token", "variable", "reason"),
    [
        ("", TOKEN, "WEBHOOK_SECRET", "is not set"),
        ("short-secret", TOKEN, "WEBHOOK_SECRET", "is 12 bytes long"),
        ("0123456789abcdef0123456789abcde", TOKEN, "WEBHOOK_SECRET", "is 31 bytes long"),
        ("çã" * 7, TOKEN, "WEBHOOK_SECRET", "is 28 bytes long"),  # bytes, not characters
        ("change-me-too", TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("CHANGE-ME-" + "0123456789abcdef" * 3, TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("Change-Me-please-with-a-long-enough-tail", TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("changeme", TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("Secret", TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("password", TOKEN, "WEBHOOK_SECRET", "is a placeholder"),
        ("x" * 64, TOKEN, "WEBHOOK_SECRET", "repeats one character"),
        (SECRET, "short-token", "API_TOKEN", "is 11 bytes long"),
        (SECRET, "change-me-three", "API_TOKEN", "is a placeholder"),
        (SECRET, "change-me-" + "0123456789abcdef" * 2, "API_TOKEN", "is a placeholder"),
        (SECRET, "admin", "API_TOKEN", "is a placeholder"),
    ],
)
def test_the_api_refuses_to_start_with_a_weak_secret(
    engine: Engine, webhook_secret: str, api_token: str, variable: str, reason: str
) -> None:
    settings = Settings(webhook_secret=webhook_secret, api_token=api_token)

    with pytest.raises(OperatorError) as refused:
        create_app(settings=settings, engine=engine)

    message = refused.value.message
    assert refused.value.title == "The API cannot start"
    assert message.startswith(f"{variable} {reason}"), message
    assert message.endswith(".") and ". " not in message  # one sentence
    for secret in (webhook_secret, api_token):
        assert not secret or secret not in message  # never echoed to the log


@pytest.mark.parametrize(
    ("webhook_secret", "api_token"),
    [
        ("0123456789abcdef0123456789abcdef", ""),  # 32 bytes; no token: uploads off
        ("çã" * 8, "a-token-of-exactly-32-bytes-long"),
    ],
)
def test_the_api_starts_with_32_byte_secrets(
    engine: Engine, webhook_secret: str, api_token: str
) -> None:
    app = create_app(
        settings=Settings(webhook_secret=webhook_secret, api_token=api_token), engine=engine
    )
    assert [route.path for route in app.routes if route.path == "/health"] == ["/health"]


@pytest.mark.slow
def test_the_api_refuses_to_start_without_a_webhook_secret(app_env: dict[str, str]) -> None:
    env = app_env | {"WEBHOOK_SECRET": "", "API_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "billing", "api", "--host", "127.0.0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "WEBHOOK_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_cli_serves_the_api_on_api_port(app_env: dict[str, str], db: Engine) -> None:
    import_charges(db, ("8291", "100000.00"))
    port = free_port()
    env = app_env | {"WEBHOOK_SECRET": CLI_SECRET, "API_TOKEN": "", "API_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "api", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        pytest.fail(f"the API did not start:\n{process.communicate()[0]}")
                    time.sleep(0.2)
            assert health.json() == {"status": "ok"}
            body = payment_body()
            paid = client.post(
                "/webhooks/payments",
                content=body,
                headers={"X-Signature": signature(body, CLI_SECRET)},
            )
            assert paid.json()["chargeStatus"] == "paid"
            # No API_TOKEN in this environment: uploads are off, and say so.
            refused = upload(client, debtor_csv("A-1"))
            assert refused.status_code == 503
            assert "API_TOKEN" in refused.json()["detail"]
    finally:
        process.terminate()
        process.wait(timeout=20)


BANK_FILE = (
    b"Nome do Cliente;Documento;E-mail;Valor Original;Vencimento;Contrato\n"
    b"Ana Souza;529.982.247-25;ana@example.com;1.000,50;31/10/2026;C-1\n"
)
BANK_COLUMNS = {
    "name": "Nome do Cliente",
    "governmentId": "Documento",
    "email": "E-mail",
    "debtAmount": "Valor Original",
    "debtDueDate": "Vencimento",
    "debtId": "Contrato",
}


def test_an_upload_reads_a_foreign_file_with_a_saved_mapping(
    client: httpx.Client, db: Engine
) -> None:
    from billing.imports.mapping import save_mapping
    from tests.support.actors import OPERATOR

    save_mapping(
        db, actor=OPERATOR, name="Banco X", header=list(BANK_COLUMNS.values()), columns=BANK_COLUMNS
    )
    refused = upload(client, BANK_FILE)
    assert refused.status_code == 422
    assert "Required column(s) missing" in refused.json()["detail"]

    response = upload(client, BANK_FILE, mapping="Banco X")

    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 1
    assert scalar(db, "SELECT amount::text FROM charges WHERE debt_id = 'C-1'") == "1000.50"


def test_an_upload_with_an_unknown_mapping_is_refused_naming_the_saved_ones(
    client: httpx.Client, db: Engine
) -> None:
    from billing.imports.mapping import save_mapping
    from tests.support.actors import OPERATOR

    save_mapping(
        db, actor=OPERATOR, name="Banco X", header=list(BANK_COLUMNS.values()), columns=BANK_COLUMNS
    )
    response = upload(client, BANK_FILE, mapping="ERP")

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "No column mapping is called 'ERP'. Saved mappings: Banco X."
    )
    assert scalar(db, "SELECT count(*) FROM charges") == 0


def test_the_api_answers_in_english_whatever_the_dashboards_language(
    client: httpx.Client, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its readers are other systems: a message that followed LANGUAGE would break them."""
    from billing.core.i18n import language_used
    from billing.core.settings import get_settings
    from billing.imports.mapping import mapping_named

    monkeypatch.setenv("LANGUAGE", "pt_BR")
    get_settings.cache_clear()
    try:
        with language_used("pt_BR"), pytest.raises(OperatorError) as in_portuguese:
            mapping_named(db, "ERP")  # the same refusal, in the dashboard's language
        assert "ERP" in in_portuguese.value.message
        assert not in_portuguese.value.message.startswith("No column mapping")

        response = upload(client, BANK_FILE, mapping="ERP")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert response.status_code == 422
    assert response.json()["detail"].startswith("No column mapping is called 'ERP'.")
