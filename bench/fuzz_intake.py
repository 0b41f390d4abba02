"""Fuzz the file intake (reading and validation) and the webhook's JSON reading, for minutes.

    python -m bench.fuzz_intake [--minutes 5] [--batch 500]

Hypothesis, with a large budget, on the properties tests/imports/test_fuzz_intake.py checks in a
few seconds: random bytes, real debtor files (generated ones, the original challenge's
sample, a Brazilian Excel export, quoted values, CRLF) mutated byte by byte and line by
line, files in every encoding, huge fields and NUL bytes anywhere. Every file must end
as a FileRefused with one sentence, or as rows each valid or rejected with reasons;
never another exception. Every webhook body must end as a notification or as an
InvalidPayment / UnreadableBody with one sentence (a 4xx). Batches of `--batch` examples
run one property after another, each with a fresh seed, until `--minutes` have passed;
prints the cases run and every failure (the shrunk example and what went wrong).
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from billing.core.errors import FileRefused, OperatorError
from billing.core.settings import Settings
from billing.imports.reading import REQUIRED_COLUMNS, read_debtor_file
from billing.imports.service import prepare_file
from billing.imports.validation import validate_rows
from billing.payments.service import read_payment_notification

HEADER = ",".join(REQUIRED_COLUMNS)
MAX_BYTES = 250 * 1024 * 1024
ENCODINGS = (
    "utf-8", "utf-8-sig", "cp1252", "latin-1", "iso-8859-15", "utf-16", "utf-16-le",
    "utf-16-be", "utf-32", "shift_jis", "gb18030", "big5", "euc-kr", "koi8-r", "mac_roman",
    "cp437", "cp500", "utf-7",
)  # fmt: skip


def _generated_file() -> bytes:
    """Thirty rows as bench.generate writes them (valid CPFs, accents, UUID debtIds)."""
    import tempfile
    from pathlib import Path

    from bench.generate import write_debtor_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.csv"
        write_debtor_file(path, rows=30, seed=3)
        return path.read_bytes()


SAMPLE_FILES: tuple[bytes, ...] = (
    # The original challenge's sample (4-digit governmentIds: read leniently).
    (
        f"{HEADER}\n"
        "John Doe,11111111111,johndoe@kanastra.com.br,1000000.00,2022-10-12,"
        "1adb6ccf-ff16-467f-bea7-5f05d494280f\n"
        "Jane Roe,8291,jane@example.com,1500.5,2022-11-01,8291\n"
    ).encode(),
    # A Brazilian Excel export: semicolons, cp1252, Portuguese headers, 1.234,56.
    (
        "Nome;CPF;E-mail;Valor;Vencimento;Id da dívida\r\n"
        "Conceição Araújo;529.982.247-25;conceicao@example.com.br;1.234,56;31/01/2030;A-1\r\n"
        "João Antônio;111.444.777-35;joao@example.com;99,90;1/2/2030;A-2\r\n"
    ).encode("cp1252"),
    # Quoted values with delimiters, doubled quotes and line breaks; an extra column.
    (
        f"{HEADER},notes\n"
        '"Souza, Ana",52998224725,ana@example.com,10.00,2030-01-31,Q-1,"say ""hi"""\n'
        '"Lima\nBia",11144477735,bia@example.com,20,2030-02-28,Q-2,\n'
    ).encode(),
    _generated_file(),
)


@dataclass(frozen=True)
class Outcome:
    """What became of a file: refused with a sentence, or rows valid and rejected."""

    refusal: str | None
    rows: int = 0
    valid: int = 0
    rejected: int = 0


def check_file(data: bytes, *, max_bytes: int = MAX_BYTES) -> Outcome:
    """Read and validate `data` both ways (strict and lenient documents), through the
    import's own preparation too; raise AssertionError when the intake misbehaves."""
    try:
        file = read_debtor_file(data, max_bytes=max_bytes)
    except FileRefused as refused:
        _assert_one_sentence(refused.message)
        _assert_prepare_refuses(data, refused.message, max_bytes=max_bytes)
        return Outcome(refusal=refused.message)
    outcome = Outcome(refusal=None)
    for lenient in (False, True):
        rows = validate_rows(file, lenient_documents=lenient)
        assert rows.valid.num_rows + rows.rejected.num_rows == file.row_count
        assert all(rows.rejected.column("reasons").to_pylist())
        lines = sorted(
            rows.valid.column("line").to_pylist() + rows.rejected.column("line").to_pylist()
        )
        assert lines == list(range(2, file.row_count + 2))
        if lenient:
            outcome = Outcome(None, file.row_count, rows.valid.num_rows, rows.rejected.num_rows)
    prepared = prepare_file(data, lenient_documents=True, settings=_settings(max_bytes))
    assert (prepared.valid_count, prepared.rejected_count) == (outcome.valid, outcome.rejected)
    return outcome


def _settings(max_bytes: int) -> Settings:
    return Settings(max_file_mb=max(1, -(-max_bytes // (1024 * 1024))))


def _assert_prepare_refuses(data: bytes, message: str, *, max_bytes: int) -> None:
    if max_bytes % (1024 * 1024):
        return  # prepare_file takes its limit in whole megabytes
    try:
        prepare_file(data, lenient_documents=True, settings=_settings(max_bytes))
    except FileRefused as refused:
        assert refused.message == message
    else:
        raise AssertionError("prepare_file accepted a file read_debtor_file refused")


def _assert_one_sentence(message: str) -> None:
    assert message and message == message.strip(), repr(message)
    assert "\n" not in message and "\r" not in message, repr(message)
    assert message.endswith((".", ")")), repr(message)
    assert len(message) <= 400, repr(message)
    assert "Traceback" not in message and "pyarrow" not in message.lower(), repr(message)


# --- Strategies --------------------------------------------------------------------------

_INTERESTING = [
    b'"', b",", b";", b"\t", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf",
    b"\xed\xa0\x80", b" ", b"\xa0", b"\xc2\xa0", b'""', b"1.234,56", b"31/02/2030", b"-1",
    b"9" * 40, b"1e9", b"NaN", b"@", b"=cmd|' /C calc'!A0", b"name", b"debtId",
]  # fmt: skip


@st.composite
def debtor_files(draw: st.DrawFn) -> bytes:
    """A real debtor file, mutated: bytes flipped, inserted, deleted, lines repeated,
    swapped or cut, huge runs inserted, or the whole file re-encoded."""
    data = bytearray(draw(st.sampled_from(SAMPLE_FILES)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 7))
        at = draw(st.integers(0, len(data)))
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == 1:
            data[at:at] = draw(st.sampled_from(_INTERESTING))
        elif kind == 2:
            data[at:at] = draw(st.binary(max_size=16))
        elif kind == 3:
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == 4:
            lines = bytes(data).split(b"\n")
            line = draw(st.sampled_from(lines))
            lines.insert(draw(st.integers(0, len(lines))), line)
            data = bytearray(b"\n".join(lines))
        elif kind == 5:
            lines = bytes(data).split(b"\n")
            draw(st.randoms(use_true_random=False)).shuffle(lines)
            data = bytearray(b"\n".join(lines))
        elif kind == 6:
            data[at:at] = draw(st.sampled_from([b"x", b"9", b",", b'"', b"\n"])) * draw(
                st.sampled_from([100, 70_000, 1_100_000])
            )
        else:
            encoding = draw(st.sampled_from(ENCODINGS))
            text = bytes(data).decode("utf-8", errors="replace")
            data = bytearray(text.encode(encoding, errors="replace"))
    return bytes(data)


_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["8291", "W-1", "W-2", "2022-06-09 10:00:00", "2024-02-30T10:00:00Z"]),
)
_FIELD_VALUES = {
    "debtId": st.one_of(st.sampled_from(["W-1", "W-2", "W-3", "W-9", ""]), _JSON_LEAVES),
    "paidAt": st.one_of(
        st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")),
        st.datetimes().map(lambda moment: moment.isoformat()),
        _JSON_LEAVES,
    ),
    "paidAmount": st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.integers(min_value=-5, max_value=10**20).map(str),
        _JSON_LEAVES.map(json.dumps),
        st.sampled_from(["1e999999", "-0", "0.001", "NaN", "Infinity", "1" + "0" * 5000]),
    ),
    "paidBy": st.one_of(st.sampled_from(["John Doe", ""]), _JSON_LEAVES),
}


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    """Signed-body candidates: notifications with odd fields (a raw JSON number for the
    amount), random JSON values, random bytes, and valid bodies mutated."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        members = []
        for name, values in _FIELD_VALUES.items():
            if draw(st.booleans()) or draw(st.booleans()):
                value = draw(values)
                raw = value if name == "paidAmount" else json.dumps(value)
                members.append(f"{json.dumps(name)}: {raw}")
        if draw(st.booleans()):
            members.append(f'"extra": {json.dumps(draw(_JSON_LEAVES))}')
        return ("{" + ", ".join(members) + "}").encode("utf-8", errors="surrogatepass")
    if kind == 1:
        value = draw(
            st.recursive(
                _JSON_LEAVES,
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                ),
                max_leaves=20,
            )
        )
        return json.dumps(value).encode()
    if kind == 2:
        return draw(st.binary(max_size=300))
    body = bytearray(
        b'{"debtId": "W-1", "paidAt": "2024-03-01 10:00:00", '
        b'"paidAmount": 10.00, "paidBy": "John Doe"}'
    )
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        if draw(st.booleans()) and body:
            del body[at : at + draw(st.integers(1, 5))]
        else:
            body[at:at] = draw(st.sampled_from([b'"', b"{", b"}", b"\\", b"\\u0000", b"\xff"]))
    return bytes(body)


def check_webhook_body(body: bytes) -> None:
    """Reading a body ends as a notification or an OperatorError with one sentence."""
    try:
        notification = read_payment_notification(body, timezone="America/Sao_Paulo")
    except OperatorError as error:  # InvalidPayment and UnreadableBody: a 400 or a 422
        _assert_one_sentence(error.message)
        return
    assert notification.paid_amount > Decimal(0)
    assert notification.debt_id and notification.paid_by


# --- The long run ------------------------------------------------------------------------


def _properties() -> dict[str, object]:
    return {
        "random bytes": (st.binary(max_size=4096), check_file),
        "mutated real files": (debtor_files(), check_file),
        "any encoding": (
            st.tuples(st.text(min_size=1, max_size=80), st.sampled_from(ENCODINGS)).map(
                lambda pair: f"{HEADER}\n{pair[0]},52998224725,a@b.co,1,2030-01-31,D-1\n".encode(
                    pair[1], errors="replace"
                )
            ),
            check_file,
        ),
        "webhook bodies": (webhook_bodies(), check_webhook_body),
    }


def run_batch(
    strategy: st.SearchStrategy, check: object, *, examples: int, random_seed: int
) -> int:
    """Run `examples` cases of one property; returns how many ran (raises on a failure)."""
    ran = 0

    @seed(random_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(value=strategy)
    def property_holds(value: object) -> None:
        nonlocal ran
        ran += 1
        check(value)  # type: ignore[operator]

    property_holds()
    return ran


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=500, help="examples per batch")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    ran: dict[str, int] = {}
    failures: list[str] = []
    properties = _properties()
    while time.monotonic() < deadline:
        for name, (strategy, check) in properties.items():
            if time.monotonic() >= deadline:
                break
            batch_seed = rng.randrange(2**32)
            try:
                ran[name] = ran.get(name, 0) + run_batch(
                    strategy, check, examples=args.batch, random_seed=batch_seed
                )
            except Exception as failure:  # the property failed: keep going, report it
                ran[name] = ran.get(name, 0) + args.batch
                detail = "".join(traceback.format_exception_only(failure)).strip()
                failures.append(f"{name} (seed {batch_seed}): {detail[:2000]}")
    seconds = time.monotonic() - started
    print(f"fuzzed the intake and the webhook's JSON for {seconds / 60:.1f} minutes")
    for name, count in ran.items():
        print(f"  {name:<20} {count:>8} cases")
    print(f"  {'total':<20} {sum(ran.values()):>8} cases, {len(failures)} failures")
    for failure in failures:
        print(f"  FAILURE {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
