"""Files from other systems: which of their columns is which of ours.

A file whose header does not name the required columns (after the aliases that
reading accepts) is mapped by an operator, column by column. The first proposal is a
guess (`guess_columns`): each of the file's columns is scored by its name's likeness to
ours and by what its first values look like (a CPF/CNPJ, a date, an amount, an e-mail,
a UUID, a person's name), and the best pairs are taken one by one. A mapping may be
saved under the name of its source (`save_mapping`); it is offered again for a file
with the same header (`mapping_for_header`) and used by name by the CLI and the API
(`mapping_named`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from difflib import SequenceMatcher

from sqlalchemy import Engine

from billing.accounts import audit
from billing.accounts.access import Actor, Permission, require
from billing.core.errors import OperatorError
from billing.core.i18n import _
from billing.imports.reading import REQUIRED_COLUMNS, header_key
from db import mappings as mappings_db
from db.mappings import SavedMapping

MAX_NAME_LENGTH = 80
# Below this score a column is not proposed at all: the operator chooses.
_MIN_SCORE = 0.35

# Names each required column goes by in files from banks and ERPs, compared as keys.
_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("name", "nome", "devedor", "cliente", "sacado", "pagador", "razaosocial"),
    "governmentId": ("governmentid", "cpf", "cnpj", "cpfcnpj", "documento", "doc", "taxid"),
    "email": ("email", "mail", "correioeletronico"),
    "debtAmount": ("debtamount", "amount", "valor", "valororiginal", "saldo", "montante"),
    "debtDueDate": ("debtduedate", "duedate", "vencimento", "venc", "datavencimento"),
    "debtId": ("debtid", "id", "contrato", "titulo", "numerodocumento", "identificador"),
}

_DIGITS = re.compile(r"\D")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}")
_AMOUNT = re.compile(r"(R\$\s*)?-?\d{1,3}(\.?\d{3})*(,\d{1,2})?|-?\d+(\.\d{1,2})?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PERSON = re.compile(r"[^\W\d_]{2,}(\s+[^\W\d_.]+\.?)+")


def _looks_like_document(value: str) -> bool:
    return len(_DIGITS.sub("", value)) in (11, 14) and not _DATE.fullmatch(value)


_LOOKS_LIKE: dict[str, Callable[[str], bool]] = {
    "name": lambda value: bool(_PERSON.fullmatch(value)),
    "governmentId": _looks_like_document,
    "email": lambda value: bool(_EMAIL.fullmatch(value)),
    "debtAmount": lambda value: bool(_AMOUNT.fullmatch(value)) and not value.isdigit(),
    "debtDueDate": lambda value: bool(_DATE.fullmatch(value)),
    "debtId": lambda value: bool(_UUID.fullmatch(value)),
}


def headers_key(header: Sequence[str]) -> str:
    """One string for a header, the same for the same columns however they are spelt."""
    return "|".join(header_key(name) for name in header)


def guess_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> dict[str, str | None]:
    """For each required column, the file's column most like it (None: no good guess)."""
    scores = sorted(
        (
            (_score(column, position, name, rows), column, name)
            for column in REQUIRED_COLUMNS
            for position, name in enumerate(header)
        ),
        reverse=True,
    )
    guess: dict[str, str | None] = dict.fromkeys(REQUIRED_COLUMNS)
    taken: set[str] = set()
    for score, column, name in scores:
        if score >= _MIN_SCORE and guess[column] is None and name not in taken:
            guess[column] = name
            taken.add(name)
    return guess


def _score(column: str, position: int, name: str, rows: Sequence[Sequence[str]]) -> float:
    by_name = _name_likeness(column, name)
    by_values = _value_likeness(column, [row[position] for row in rows if position < len(row)])
    if column == "debtId" and by_values == 0:  # ids come in any shape: trust the name
        return by_name
    return 0.5 * by_name + 0.5 * by_values if rows else by_name


def _name_likeness(column: str, name: str) -> float:
    key = header_key(name)
    if not key:
        return 0.0
    best = 0.0
    for known in _NAMES[column]:
        if key == known:
            return 1.0
        if min(len(known), len(key)) >= 3 and (known in key or key in known):
            best = max(best, 0.8)
        best = max(best, SequenceMatcher(None, key, known).ratio())
    return best


def _value_likeness(column: str, values: Sequence[str]) -> float:
    filled = [value for value in values if value]
    if not filled:
        return 0.0
    return sum(_LOOKS_LIKE[column](value) for value in filled) / len(filled)


def check_columns(header: Sequence[str], columns: Mapping[str, str | None]) -> dict[str, str]:
    """The mapping an operator chose, checked: every required column from a column of
    this file, no column of the file used twice. Raises OperatorError saying what is wrong."""
    unmapped = [column for column in REQUIRED_COLUMNS if not columns.get(column)]
    if unmapped:
        raise OperatorError(
            _("Choose a column of the file for: {columns}.").format(columns=", ".join(unmapped))
        )
    chosen = {column: str(columns[column]) for column in REQUIRED_COLUMNS}
    absent = sorted({name for name in chosen.values() if name not in header})
    if absent:
        raise OperatorError(
            _("The file has no column named {names}.").format(names=", ".join(map(repr, absent)))
        )
    used: dict[str, list[str]] = {}
    for column, name in chosen.items():
        used.setdefault(name, []).append(column)
    twice = {name: columns for name, columns in used.items() if len(columns) > 1}
    if twice:
        name, columns_of = next(iter(twice.items()))
        raise OperatorError(
            _("The column {name} is chosen for {columns}; each field needs its own.").format(
                name=repr(name), columns=", ".join(columns_of)
            )
        )
    return chosen


def save_mapping(
    engine: Engine,
    *,
    actor: Actor,
    name: str,
    header: Sequence[str],
    columns: Mapping[str, str | None],
) -> SavedMapping:
    """Keep a mapping under the name of the file's source, for files with this header."""
    require(actor, Permission.IMPORT)
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise OperatorError(
            _(
                "Give the mapping a name of 1 to {count} characters, such as the system the "
                "file comes from."
            ).format(count=MAX_NAME_LENGTH)
        )
    chosen = check_columns(header, columns)
    key = headers_key(header)
    with engine.begin() as conn:
        replaced = mappings_db.save_mapping(
            conn, name=name, headers_key=key, columns=chosen, actor=actor.name
        )
        audit.record(
            conn,
            actor=actor,
            action=audit.Action.MAPPING_SAVED,
            subject=name,
            details={"columns": chosen, "replaced": replaced},
        )
    return SavedMapping(name=name, headers_key=key, columns=chosen)


def mapping_named(engine: Engine, name: str) -> SavedMapping:
    """A saved mapping by its name; an OperatorError listing the saved ones otherwise."""
    with engine.connect() as conn:
        found = mappings_db.mapping_named(conn, " ".join(name.split()))
        if found is not None:
            return found
        names = mappings_db.mapping_names(conn)
    known = (
        _("Saved mappings: {names}.").format(names=", ".join(names))
        if names
        else _("No mapping is saved yet.")
    )
    raise OperatorError(
        _("No column mapping is called {name}.").format(name=repr(name)) + " " + known
    )


def mapping_for_header(engine: Engine, header: Sequence[str]) -> SavedMapping | None:
    """The mapping saved for files with this header (the last one saved), if any."""
    with engine.connect() as conn:
        return mappings_db.mapping_for_headers(conn, headers_key(header))


def mapping_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return mappings_db.mapping_names(conn)
