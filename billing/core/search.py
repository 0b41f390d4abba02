"""Accent- and case-insensitive search text, the same on the way in and on the way out.

Names are folded once, when a file is imported, into `debtors.search_name`; search terms
are folded by the same function, so "Conceicao", "CONCEIÇÃO" and "conceição" meet. It is
done here rather than in SQL because the embedded server ships no `unaccent`, and doing it
vectorised in Arrow costs a fraction of a second for a million names.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

_WORD = re.compile(r"[0-9a-z]+")
# Apostrophes a name may be typed with besides "'": U+2019, U+02BC, U+2018, backtick.
_APOSTROPHES = "[\u2019\u02bc\u2018`]"


def fold_for_search(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower-case, strip accents (NFKD minus combining marks), collapse spaces.

    A name with an apostrophe is also given its joined form, so both spellings people
    type find it: "D'Ávila" (with any apostrophe, typographic too) folds to
    "d'avila davila", so "avila", "d'avila" and "davila" all match; "Sant'Ana" folds to
    "sant'ana santana".
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    distinct = pc.unique(values)  # a file repeats names; fold each once
    folded = pc.utf8_normalize(distinct, "NFKD")
    folded = pc.replace_substring_regex(folded, r"\p{Mn}+", "")
    folded = pc.utf8_lower(folded)
    folded = pc.replace_substring_regex(folded, _APOSTROPHES, "'")
    folded = pc.utf8_trim_whitespace(pc.replace_substring_regex(folded, r"\s+", " "))
    joined = pc.binary_join_element_wise(folded, pc.replace_substring(folded, "'", ""), " ")
    folded = pc.if_else(pc.match_substring(folded, "'"), joined, folded)
    return pc.take(folded, pc.index_in(values, value_set=distinct))


def fold(text: str) -> str:
    """The folded form of one string (exactly what the import stores)."""
    return fold_for_search(pa.array([text], pa.string()))[0].as_py() or ""


def search_words(text: str) -> list[str]:
    """The words of a search term, folded: what a full-text prefix query is built from."""
    return _WORD.findall(fold(text))
