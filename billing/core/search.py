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
_NOT_WORD = r"[^0-9a-z]+"  # what separates _WORD's words, for Arrow's RE2
# Apostrophes a name may be typed with besides "'": U+2019, U+02BC, U+2018, backtick.
_APOSTROPHES = "[\u2019\u02bc\u2018`]"


def fold_for_search(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The words of each name, lower-case and without accents (NFKD minus combining
    marks), one space between them: a word is a run of a-z and 0-9 (_WORD), everything
    else separates words.

    That is exactly how a search term is cut (search_words), and the server makes the
    searchable words of a name by splitting this text on spaces (sql/023), so what a name
    is found by does not depend on the text-search parser's rules, and indexing a million
    names costs a split, not a parse.

    A name with an apostrophe is also given its joined form, so both spellings people
    type find it: "D'Ávila" (with any apostrophe, typographic too) folds to
    "d avila davila", so "avila", "d'avila" and "davila" all match; "Sant'Ana" folds to
    "sant ana santana".
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    distinct = pc.unique(values)  # a file repeats names; fold each once
    folded = pc.utf8_normalize(distinct, "NFKD")
    folded = pc.replace_substring_regex(folded, r"\p{Mn}+", "")
    folded = pc.utf8_lower(folded)
    folded = pc.replace_substring_regex(folded, _APOSTROPHES, "'")
    joined = pc.binary_join_element_wise(folded, pc.replace_substring(folded, "'", ""), " ")
    folded = pc.if_else(pc.match_substring(folded, "'"), joined, folded)
    # Anything but a word's letters (spaces of any kind, punctuation) separates words.
    folded = pc.utf8_trim(pc.replace_substring_regex(folded, _NOT_WORD, " "), " ")
    return pc.take(folded, pc.index_in(values, value_set=distinct))


def fold(text: str) -> str:
    """The folded form of one string (exactly what the import stores)."""
    return fold_for_search(pa.array([text], pa.string()))[0].as_py() or ""


def search_words(text: str) -> list[str]:
    """The words of a search term, folded: what a full-text prefix query is built from."""
    return _WORD.findall(fold(text))
