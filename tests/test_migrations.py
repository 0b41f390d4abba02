"""Migrations that change data: what they leave must equal what the code writes today."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Engine, text

from billing.search import fold
from db.migrations import discover_migrations, migrate


def _migrate_up_to(engine: Engine, last: str, folder: Path) -> None:
    """Apply the migrations up to and including `last`, as an older release would have."""
    folder.mkdir()
    for migration in discover_migrations():
        if migration.name <= last:
            shutil.copy(migration.path, folder / migration.name)
    migrate(engine, folder)


def test_names_imported_before_006_are_found_by_their_joined_form(
    empty_database: Engine, tmp_path: Path
) -> None:
    _migrate_up_to(empty_database, "005_dashboard_indexes.sql", tmp_path / "sql")
    # search_name as the import folded names until 006: accents gone, apostrophes as written.
    before = {
        "52998224725": ("José D\u2019Ávila", "jose d\u2019avila"),
        "11144477735": ("Ana Sant'Ana", "ana sant'ana"),
        "12345678909": ("Maria da Conceição", "maria da conceicao"),
    }
    with empty_database.begin() as conn:
        for government_id, (name, search_name) in before.items():
            conn.execute(
                text(
                    "INSERT INTO debtors (government_id, name, email, search_name) "
                    "VALUES (:government_id, :name, 'x@example.com', :search_name)"
                ),
                {"government_id": government_id, "name": name, "search_name": search_name},
            )

    assert migrate(empty_database)[0] == "006_search_apostrophes.sql"

    with empty_database.connect() as conn:
        stored = dict(conn.execute(text("SELECT name, search_name FROM debtors")).all())
        found = conn.execute(
            text(
                "SELECT name FROM debtors WHERE to_tsvector('simple', search_name) "
                "@@ to_tsquery('simple', :query) ORDER BY name"
            ),
            {"query": "davila:* | santana:*"},
        ).scalars()
        assert list(found) == ["Ana Sant'Ana", "José D\u2019Ávila"]
    assert stored == {name: fold(name) for name, _ in before.values()}
