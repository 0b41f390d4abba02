"""The catalogs: every string shown to people is in them and translated, the compiled .mo
files match the .po files, and the language follows whoever is being served."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from billing.core import i18n
from billing.core.i18n import _, current_language, language_used, ngettext, use_language
from billing.core.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "pt_BR" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


def extracted() -> Catalog:
    """What `pybabel extract -F babel.cfg .` finds today, in a fresh catalog."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    catalog = Catalog()
    for path, line, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        catalog.add(message, None, [(path, line)], auto_comments=comments, context=context)
    return catalog


def pt_br() -> Catalog:
    with PO.open("rb") as po:
        return read_po(po)


def test_every_string_shown_is_translated_into_portuguese() -> None:
    source, translated = extracted(), pt_br()
    assert len(source) > 250  # the screens, the CLI and the labels were found
    missing, untranslated, fuzzy = [], [], []
    for message in source:
        if not message.id:
            continue
        entry = translated.get(message.id)
        if entry is None:
            missing.append(message.id)
        elif entry.fuzzy:
            fuzzy.append(message.id)
        elif not entry.string or not all(entry.string):
            untranslated.append(message.id)
    hint = "run pybabel extract and update, translate, compile (README, Languages)"
    assert not missing, f"not in locale/pt_BR: {missing}; {hint}"
    assert not untranslated, f"no Portuguese for: {untranslated}; {hint}"
    assert not fuzzy, f"fuzzy (a guess, to check): {fuzzy}"


def test_translations_keep_the_placeholders() -> None:
    """A translation that drops or renames {count} breaks .format() on screen."""
    for message in pt_br():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, (message.id, string)


def test_the_compiled_catalog_is_up_to_date_with_the_po() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, pt_br())
    assert MO.read_bytes() == compiled.getvalue(), "run: pybabel compile -d locale"


def test_english_is_the_source_and_portuguese_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LANGUAGE")
    get_settings.cache_clear()
    try:
        assert current_language() == "pt_BR"
        assert _("Charges") == "Cobranças"
        assert ngettext("{count} charge", "{count} charges", 1) == "{count} cobrança"
        assert ngettext("{count} charge", "{count} charges", 3) == "{count} cobranças"
        with language_used("en"):
            assert _("Charges") == "Charges"
            assert ngettext("{count} charge", "{count} charges", 3) == "{count} charges"
        assert _("Charges") == "Cobranças"
        monkeypatch.setenv("LANGUAGE", "en")
        get_settings.cache_clear()
        assert _("Charges") == "Charges"
    finally:
        get_settings.cache_clear()


def test_each_thread_serves_its_own_language() -> None:
    """Two Streamlit sessions run in two threads: one's choice is not the other's."""
    seen: dict[str, str] = {}

    def serve(language: str) -> None:
        use_language(language)
        seen[language] = _("Debtors")

    threads = [threading.Thread(target=serve, args=(lang,)) for lang in i18n.LANGUAGES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"pt_BR": "Devedores", "en": "Debtors"}
    assert current_language() == "en"  # this thread's (LANGUAGE=en for the suite)


def test_an_unknown_language_falls_back_to_the_default() -> None:
    with language_used("fr"):
        assert current_language() == get_settings().language


def test_labels_are_marked_and_translated_at_use() -> None:
    from billing.core.filters import SORT_LABELS, STATUS_LABELS

    with language_used("pt_BR"):
        assert _(STATUS_LABELS["overdue"]) == "Vencida"
        assert _(STATUS_LABELS["partially_paid"]) == "Paga em parte"
        assert _(SORT_LABELS[("amount", True)]) == "Valor, do maior para o menor"
    assert STATUS_LABELS["overdue"] == "Overdue"  # the constant itself stays the source


@pytest.mark.parametrize(
    ("language", "expected"),
    [(None, "o banco de dados está atualizado"), ("en", "the database is up to date")],
)
def test_the_cli_speaks_language(
    app_env: dict[str, str], language: str | None, expected: str
) -> None:
    env = {key: value for key, value in app_env.items() if key != "LANGUAGE"}
    if language:
        env["LANGUAGE"] = language
    subprocess.run(  # the first run may apply migrations; the second has nothing to do
        [sys.executable, "-m", "billing", "migrate"], env=env, cwd=ROOT, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, "-m", "billing", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_the_cli_refusal_is_in_portuguese_by_default(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    env = {key: value for key, value in app_env.items() if key != "LANGUAGE"}
    done = subprocess.run(
        [sys.executable, "-m", "billing", "import", str(tmp_path / "missing.csv")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Arquivo recusado: Não foi possível ler ")
