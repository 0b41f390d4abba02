"""Realistic debtor files for benchmarks: valid CPFs, Brazilian names, installments.

Every value is built with numpy over whole columns (no Python loop per row), so a
1.1-million-row file takes a few seconds. The same arguments and seed give the same file.

What a file looks like, and why:

* Each debtor has one valid CPF, one name and one e-mail, and about ``rows / debtors``
  charges (default four, like installments); every debtor has at least one.
* One row in five writes the CPF formatted (``529.982.247-25``), the rest as 11 plain
  digits, so a debtor's rows are only merged if the import normalises them.
* Names have accents (``Conceição``, ``João``, ``Antônio``); e-mails are their ASCII
  folding (``joao.conceicao42@gmail.com``).
* Amounts run from R$ 10 to R$ 100,000, log-uniform (many small debts, few large);
  two rows in five are whole reais (``7811``), the rest have two decimals (``7811.50``).
* Due dates from 2022-10-01 to 2024-10-31 as ``YYYY-MM-DD``; debtIds are UUID4 strings.
* Month after month (``write_monthly_debtor_files``): several such files, every debtId
  distinct across them, about a third of each later file's debtors already owing from an
  earlier one (same CPF, name and e-mail) and the rest new.

Usage: ``python -m bench.generate OUT.csv [--rows N] [--debtors M] [--seed S]``
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.dtypes import StringDType

HEADER = "name,governmentId,email,debtAmount,debtDueDate,debtId"

FIRST_NAMES = (
    "Maria", "Ana", "Francisca", "Antônia", "Adriana", "Juliana", "Márcia", "Fernanda",
    "Patrícia", "Aline", "Sandra", "Camila", "Amanda", "Bruna", "Jéssica", "Letícia",
    "Júlia", "Luciana", "Vanessa", "Mariana", "Gabriela", "Conceição", "Beatriz", "Débora",
    "Cláudia", "Mônica", "Sônia", "Lúcia", "Vitória", "Iracema", "Maria José",
    "Maria da Conceição", "Ana Paula", "Maria Eduarda", "José", "João", "Antônio",
    "Francisco", "Carlos", "Paulo", "Pedro", "Lucas", "Luiz", "Marcos", "Luís", "Gabriel",
    "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo", "Felipe", "Raimundo", "Rodrigo",
    "Sebastião", "André", "Fábio", "Márcio", "Cícero", "Vinícius", "Thiago", "Otávio",
    "Caio", "Davi", "Heitor", "Benedito", "Joaquim", "Matheus", "João Pedro",
    "José Carlos", "João Batista", "Luiz Antônio",
)  # fmt: skip
SURNAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Ribeiro", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes",
    "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes",
    "Marques", "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves", "Santana",
    "Teixeira", "Araújo", "Conceição", "Magalhães", "Simões", "Brandão", "Falcão",
    "Assunção", "Fonseca", "Guimarães", "Peixoto", "Sampaio", "Patrício", "Damásio",
    "Romão", "Aragão", "Leão", "Estêvão", "de Jesus", "da Silva", "dos Santos",
    "de Oliveira", "da Conceição", "de Souza", "D'Ávila",
)  # fmt: skip
EMAIL_DOMAINS = (
    "gmail.com", "gmail.com", "gmail.com", "hotmail.com", "hotmail.com", "yahoo.com.br",
    "outlook.com", "uol.com.br", "bol.com.br", "terra.com.br", "icloud.com", "live.com",
)  # fmt: skip

FIRST_DUE_DATE = np.datetime64("2022-10-01")
LAST_DUE_DATE = np.datetime64("2024-10-31")
SMALLEST_AMOUNT_CENTS = 10_00
LARGEST_AMOUNT_CENTS = 100_000_00
FORMATTED_CPF_SHARE = 0.2
WHOLE_REAIS_SHARE = 0.4
NUMBERED_EMAIL_SHARE = 0.7
KNOWN_DEBTOR_SHARE = 1 / 3  # write_monthly_debtor_files: debtors of earlier files

_TEXT = StringDType()
_ROWS_PER_WRITE = 100_000
_CPF_WEIGHTS = np.arange(10, 1, -1)  # first check digit, over the 9 base digits
_REPEATED_DIGITS = 111_111_111  # 000000000, 111111111, ... are refused as CPFs


SAMPLE_DEBTORS = 9000  # four-digit governmentIds: 1000 to 9999


def default_debtor_count(rows: int) -> int:
    """About four charges per debtor, like installments."""
    return max(rows // 4, 1)


def write_debtor_file(
    path: Path,
    *,
    rows: int = 1_100_000,
    debtors: int | None = None,
    seed: int = 1,
    sample_shape: bool = False,
) -> Path:
    """Write a CSV of `rows` charges owed by `debtors` distinct CPFs (rows // 4 by default).

    `sample_shape` writes governmentIds as the original challenge's sample has them: four
    digits, not CPFs (imported with lenient documents), so at most SAMPLE_DEBTORS debtors.
    """
    if debtors is None:
        debtors = min(default_debtor_count(rows), SAMPLE_DEBTORS if sample_shape else rows)
    limit = SAMPLE_DEBTORS if sample_shape else rows
    if rows < 1 or not 1 <= debtors <= min(rows, limit):
        raise ValueError(f"need 1 <= debtors <= {min(rows, limit)}, not debtors={debtors}")
    rng = np.random.default_rng(seed)

    if sample_shape:
        plain_cpfs = formatted_cpfs = (1000 + rng.permutation(SAMPLE_DEBTORS)[:debtors]).astype(
            _TEXT
        )
    else:
        plain_cpfs, formatted_cpfs = _cpfs(rng, debtors)
    names, emails = _names_and_emails(rng, debtors)
    debtor_of_row = _spread(rng, np.arange(debtors), rows)
    columns = _columns(rng, debtor_of_row, names, emails, plain_cpfs, formatted_cpfs)

    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for start in range(0, rows, _ROWS_PER_WRITE):
            lines = columns[0][start : start + _ROWS_PER_WRITE]
            for column in columns[1:]:
                lines = np.strings.add(
                    np.strings.add(lines, ","), column[start : start + _ROWS_PER_WRITE]
                )
            out.write("\n".join(lines.tolist()) + "\n")
    return path


@dataclass(frozen=True)
class MonthlyFiles:
    """Files written by write_monthly_debtor_files, oldest first, and who owes in them."""

    paths: list[Path]
    debtors_per_file: int  # distinct CPFs in each file
    known_per_file: int  # of those, CPFs of earlier files (none in the first)
    distinct_debtors: int  # distinct CPFs across all the files


def write_monthly_debtor_files(
    folder: Path,
    *,
    files: int = 5,
    rows: int = 1_100_000,
    debtors: int | None = None,
    known_share: float = KNOWN_DEBTOR_SHARE,
    seed: int = 1,
) -> MonthlyFiles:
    """Write `files` CSVs as the fund receives them month after month (``month_1.csv``...).

    Each has `rows` charges owed by `debtors` CPFs (rows // 4 by default), like
    write_debtor_file's. From the second file on, about `known_share` of those debtors
    already owed in an earlier file (same CPF, name and e-mail: people owe every month),
    drawn at random from every earlier file, and the rest are new. Every debtId is
    distinct across all the files, so each file brings only new charges.
    """
    debtors = default_debtor_count(rows) if debtors is None else debtors
    if files < 1 or rows < 1 or not 1 <= debtors <= rows or not 0 <= known_share < 1:
        raise ValueError(
            f"need files >= 1, 1 <= debtors <= rows and 0 <= known_share < 1, not "
            f"files={files}, rows={rows}, debtors={debtors}, known_share={known_share}"
        )
    known = round(debtors * known_share)
    new_per_file = debtors - known
    distinct = debtors + (files - 1) * new_per_file
    rng = np.random.default_rng(seed)

    plain_cpfs, formatted_cpfs = _cpfs(rng, distinct)
    names, emails = _names_and_emails(rng, distinct)
    debt_ids = _uuid4s(rng, files * rows)  # one draw: distinct across all the files
    folder = Path(folder)
    paths = []
    seen = 0  # debtors 0..seen-1 owed in an earlier file
    for number in range(files):
        if number == 0:
            returning, new = np.empty(0, dtype=np.int64), np.arange(debtors)
        else:
            returning = rng.choice(seen, size=known, replace=False)
            new = np.arange(seen, seen + new_per_file)
        seen += len(new)
        in_file = np.concatenate([returning, new])
        debtor_of_row = _spread(rng, in_file, rows)
        columns = _columns(
            rng,
            debtor_of_row,
            names,
            emails,
            plain_cpfs,
            formatted_cpfs,
            debt_ids=debt_ids[number * rows : (number + 1) * rows],
        )
        paths.append(_write_columns(folder / f"month_{number + 1}.csv", columns))
    return MonthlyFiles(
        paths=paths, debtors_per_file=debtors, known_per_file=known, distinct_debtors=distinct
    )


def _spread(rng: np.random.Generator, debtors: np.ndarray, rows: int) -> np.ndarray:
    """The debtor of each row: every one of `debtors` once, the remaining rows spread at
    random among them, then shuffled."""
    count = len(debtors)
    return debtors[
        rng.permutation(np.concatenate([np.arange(count), rng.integers(0, count, rows - count)]))
    ]


def _columns(
    rng: np.random.Generator,
    debtor_of_row: np.ndarray,
    names: np.ndarray,
    emails: np.ndarray,
    plain_cpfs: np.ndarray,
    formatted_cpfs: np.ndarray,
    *,
    debt_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """A file's six columns for those debtors; fresh debtIds unless `debt_ids` are given."""
    rows = len(debtor_of_row)
    return (
        names[debtor_of_row],
        np.where(
            rng.random(rows) < FORMATTED_CPF_SHARE,
            formatted_cpfs[debtor_of_row],
            plain_cpfs[debtor_of_row],
        ),
        emails[debtor_of_row],
        _amounts(rng, rows),
        _due_dates(rng, rows),
        _uuid4s(rng, rows) if debt_ids is None else debt_ids,
    )


def _write_columns(path: Path, columns: tuple[np.ndarray, ...]) -> Path:
    """The header, then one line per row of the six columns, comma-joined."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for start in range(0, len(columns[0]), _ROWS_PER_WRITE):
            lines = columns[0][start : start + _ROWS_PER_WRITE]
            for column in columns[1:]:
                lines = np.strings.add(
                    np.strings.add(lines, ","), column[start : start + _ROWS_PER_WRITE]
                )
            out.write("\n".join(lines.tolist()) + "\n")
    return path


def _cpfs(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct valid CPFs, as 11 plain digits and as ``529.982.247-25``."""
    candidates = rng.choice(10**9, size=count + 10, replace=False)
    bases = candidates[candidates % _REPEATED_DIGITS != 0][:count]
    digits = bases[:, None] // 10 ** np.arange(8, -1, -1) % 10
    first = _check_digit(digits @ _CPF_WEIGHTS)
    second = _check_digit(digits @ (_CPF_WEIGHTS + 1) + 2 * first)
    check = first * 10 + second
    plain = np.strings.zfill((bases * 100 + check).astype(_TEXT), 11)
    formatted = _join(
        np.strings.zfill((bases // 1_000_000).astype(_TEXT), 3),
        ".",
        np.strings.zfill((bases // 1000 % 1000).astype(_TEXT), 3),
        ".",
        np.strings.zfill((bases % 1000).astype(_TEXT), 3),
        "-",
        np.strings.zfill(check.astype(_TEXT), 2),
    )
    return plain, formatted


def _check_digit(weighted_sums: np.ndarray) -> np.ndarray:
    remainder = weighted_sums % 11
    return np.where(remainder < 2, 0, 11 - remainder)


def _names_and_emails(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A name (first name and two different surnames) and an e-mail for each debtor."""
    first = rng.integers(0, len(FIRST_NAMES), count)
    middle = rng.integers(0, len(SURNAMES), count)
    last = (middle + rng.integers(1, len(SURNAMES), count)) % len(SURNAMES)
    first_names = np.array(FIRST_NAMES, dtype=_TEXT)
    surnames = np.array(SURNAMES, dtype=_TEXT)
    names = _join(first_names[first], " ", surnames[middle], " ", surnames[last])

    first_keys = np.array([_email_word(name.split()[0]) for name in FIRST_NAMES], dtype=_TEXT)
    last_keys = np.array([_email_word(name.split()[-1]) for name in SURNAMES], dtype=_TEXT)
    numbers = rng.integers(1, 1000, count).astype(_TEXT)
    suffixes = np.where(rng.random(count) < NUMBERED_EMAIL_SHARE, numbers, "")
    domains = np.array(EMAIL_DOMAINS, dtype=_TEXT)[rng.integers(0, len(EMAIL_DOMAINS), count)]
    emails = _join(first_keys[first], ".", last_keys[last], suffixes, "@", domains)
    return names, emails


def _email_word(word: str) -> str:
    """``"D'Ávila"`` -> ``"davila"``: accents folded, only ASCII letters and digits kept."""
    folded = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in folded.lower() if c.isalnum())


def _amounts(rng: np.random.Generator, count: int) -> np.ndarray:
    log_cents = rng.uniform(np.log(SMALLEST_AMOUNT_CENTS), np.log(LARGEST_AMOUNT_CENTS), count)
    cents = np.clip(np.rint(np.exp(log_cents)), SMALLEST_AMOUNT_CENTS, LARGEST_AMOUNT_CENTS)
    cents = cents.astype(np.int64)
    with_decimals = _join(
        (cents // 100).astype(_TEXT), ".", np.strings.zfill((cents % 100).astype(_TEXT), 2)
    )
    whole_reais = np.rint(cents / 100).astype(np.int64).astype(_TEXT)
    return np.where(rng.random(count) < WHOLE_REAIS_SHARE, whole_reais, with_decimals)


def _due_dates(rng: np.random.Generator, count: int) -> np.ndarray:
    days = int((LAST_DUE_DATE - FIRST_DUE_DATE).astype(int)) + 1
    return (FIRST_DUE_DATE + rng.integers(0, days, count)).astype(_TEXT)


def _uuid4s(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` distinct random (version 4) UUIDs in their 36-character text form."""
    raw = np.frombuffer(rng.bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = raw[:, 6] & 0x0F | 0x40  # version 4
    raw[:, 8] = raw[:, 8] & 0x3F | 0x80  # RFC 4122 variant
    if np.unique(raw.view(np.dtype((np.void, 16))).ravel()).size != count:
        raise RuntimeError("two generated debtIds collided; use another seed")
    hex_digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.stack([hex_digits[raw >> 4], hex_digits[raw & 0x0F]], axis=2)
    hex_text = nibbles.reshape(count, 32)
    text = np.full((count, 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + stop - start] = hex_text[:, start:stop]
    return text.view("S36").ravel().astype(_TEXT)


def _join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation of string arrays (and constant strings)."""
    joined = parts[0]
    for part in parts[1:]:
        joined = np.strings.add(joined, part)
    return np.asarray(joined, dtype=_TEXT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description="Write a realistic debtor CSV."
    )
    parser.add_argument("out", type=Path, help="the CSV file to write")
    parser.add_argument("--rows", type=int, default=1_100_000, help="charges (default 1100000)")
    parser.add_argument("--debtors", type=int, help="distinct CPFs (default rows // 4)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--sample-shape",
        action="store_true",
        help="four-digit governmentIds, as the challenge's sample (import with lenient documents)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        path = write_debtor_file(
            args.out,
            rows=args.rows,
            debtors=args.debtors,
            seed=args.seed,
            sample_shape=args.sample_shape,
        )
    except ValueError as exc:
        parser.error(str(exc))
    size_mb = path.stat().st_size / 1e6
    seconds = time.perf_counter() - started
    print(f"wrote {path}: {args.rows} rows, {size_mb:.1f} MB in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
