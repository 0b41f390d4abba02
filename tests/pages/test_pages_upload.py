"""The Upload and Imports pages through Streamlit's AppTest, on the real database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from tests.support.actors import OPERATOR, signed_in_page
from tests.support.database import scalar
from tests.support.debtor_files import debtor_csv, sample_rows

PAGES = Path(__file__).resolve().parents[2] / "pages"


def upload_page() -> AppTest:
    return signed_in_page(PAGES / "1_Upload.py")


def test_upload_preview_then_import(dashboard_db: Engine) -> None:
    rows = [*sample_rows(8), ("", "123", "bad", "-1", "2024-13-01", "bad-1")]
    at = upload_page().run()
    assert not at.exception
    assert "Drag a CSV" in at.info[0].value

    at.file_uploader[0].set_value(("debtors.csv", debtor_csv(rows), "text/csv")).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "9" and metrics["Valid"] == "8" and metrics["Rejected"] == "1"
    assert len(at.dataframe) == 2  # the preview and the rejection summary
    assert scalar(dashboard_db, "SELECT count(*) FROM charges") == 0  # preview writes nothing

    at.button[0].click().run()
    assert not at.exception
    assert "Imported 8 charges" in at.success[0].value
    assert scalar(dashboard_db, "SELECT count(*) FROM charges") == 8
    downloads = [button.label for button in at.get("download_button")]
    assert downloads == ["Download the rejected rows (CSV with reasons)"]


def test_upload_refuses_a_bad_file_with_one_message(dashboard_db: Engine) -> None:
    at = upload_page().run()
    at.file_uploader[0].set_value(("photo.csv", b"\x89PNG\x00\x00", "text/csv")).run()
    assert not at.exception
    assert "binary" in at.error[0].value
    assert not at.button  # nothing to import


def test_imports_page_lists_history(dashboard_db: Engine) -> None:
    at = signed_in_page(PAGES / "2_Imports.py").run()
    assert "No file imported yet" in at.info[0].value

    from billing.imports.service import import_file

    import_file(
        actor=OPERATOR,
        engine=dashboard_db,
        data=debtor_csv([*sample_rows(3), ("x", "1", "x", "1", "x", "y")]),
        file_name="history.csv",
        lenient_documents=False,
    )
    at = signed_in_page(PAGES / "2_Imports.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["file_name"]) == ["history.csv"]
    assert list(frame["rejected"]) == ["1"]
