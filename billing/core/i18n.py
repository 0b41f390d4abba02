"""The operators' language: gettext catalogs (locale/<lang>/LC_MESSAGES/messages.mo).

Source strings are English; `locale/pt_BR` translates them, and English is the source
itself. The language of whoever is being served lives in a ContextVar: a Streamlit run
sets it at its top (the account's choice, else LANGUAGE), the CLI leaves it to LANGUAGE,
so the domain marks its operator messages with `_()` and they come out in that language.

- `_(message)`: the message in the current language.
- `ngettext(singular, plural, n)`: the form that agrees with `n`.
- `N_(message)`: marks a string defined at import time (a label in a dict) for the
  catalogs without translating it; translate it at use with `_(label)`.

The catalogs are managed with Babel (README, "Languages"); the compiled .mo files are
committed, so a new machine and CI need no extra step (tests check they are current).
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

from billing.core.settings import LANGUAGES, PROJECT_ROOT, get_settings

DOMAIN = "messages"
LOCALE_DIR = PROJECT_ROOT / "locale"
SOURCE_LANGUAGE = "en"
DEFAULT_LANGUAGE = "pt_BR"  # LANGUAGES (pt_BR, en) is defined with the LANGUAGE setting
# What the language switch shows: each language in its own words.
LANGUAGE_NAMES = {"pt_BR": "Português (Brasil)", "en": "English"}

_language: ContextVar[str | None] = ContextVar("language", default=None)


def is_language(value: object) -> bool:
    return isinstance(value, str) and value in LANGUAGES


def default_language() -> str:
    """LANGUAGE from the settings (checked there: pt_BR or en)."""
    configured = get_settings().language
    return configured if is_language(configured) else DEFAULT_LANGUAGE


def current_language() -> str:
    """The language of whoever is being served now: the one set, else the default."""
    return _language.get() or default_language()


def use_language(language: str | None) -> None:
    """Serve the rest of this run (thread or task) in `language`; None: the default."""
    _language.set(language if is_language(language) else None)


@contextmanager
def language_used(language: str | None) -> Iterator[None]:
    """Serve the block in `language`, then go back to the language before it."""
    token = _language.set(language if is_language(language) else None)
    try:
        yield
    finally:
        _language.reset(token)


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language`; the source language needs none. A missing
    catalog is a broken install: it fails loudly rather than showing English quietly."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language])


def _(message: str) -> str:
    """`message` in the current language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or the plural of a message, in the current language, agreeing with n."""
    return translations(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for the catalogs without translating it now (import-time labels)."""
    return message
