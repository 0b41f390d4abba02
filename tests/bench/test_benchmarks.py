"""The import and growth benchmarks, run small against the test server, so they keep working.

Their timings mean nothing at this size (the goals live in the full-size runs, not here);
what is checked is that every step runs and loads what it should (the import benchmark
raises otherwise; the growth benchmark reports each import's outcome, checked here) and
that the reports' figures agree with one another.
"""

from __future__ import annotations

import json

import pytest

from bench import bench_growth, bench_import

pytestmark = pytest.mark.slow  # runs the benchmarks end to end


def test_import_benchmark_runs_every_step_and_reports_consistent_figures(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--rows", "20000", "--debtors", "5000", "--json", "--database-url", database_url]

    assert bench_import.main(arguments) == 0

    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["debtors"]) == (20000, 5000)
    assert (report["imported"], report["duplicates"], report["rejected"]) == (20000, 0, 0)
    assert min(report["copy_seconds"], report["import_seconds"], report["floor_seconds"]) > 0
    # The report rounds seconds to milliseconds, hence the tolerance.
    copy = report["copy_seconds"]
    assert report["ratio"] == pytest.approx(report["import_seconds"] / copy, rel=0.05)
    assert report["floor_ratio"] == pytest.approx(report["floor_seconds"] / copy, rel=0.05)
    assert 0 < report["peak_memory_bytes"] < bench_import.MEMORY_GOAL_BYTES


def test_growth_benchmark_imports_every_month_into_one_database_and_reports_each(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--rows", "2000", "--files", "3", "--json", "--database-url", database_url]

    assert bench_growth.main(arguments) == 0

    report = json.loads(capsys.readouterr().out)
    months = report["imports"]
    assert [month["label"] for month in months] == ["month 1", "month 2", "month 3"]
    for number, month in enumerate(months, start=1):
        assert month["error"] is None
        assert (month["status"], month["rows"], month["imported"]) == ("done", 2000, 2000)
        assert (month["duplicates"], month["rejected"]) == (0, 0)
        assert month["charges_after"] == 2000 * number
        assert month["peak_memory_bytes"] > 0
        assert month["ratio"] == pytest.approx(month["seconds"] / months[0]["seconds"], rel=0.05)
        assert set(month["probe"]["queries"]) == set(bench_growth.PROBE_QUERIES)
    # Each later file: 500 debtors, a third of them (167) owing from an earlier file.
    assert (report["debtors_per_file"], report["known_debtors_per_file"]) == (500, 167)
    assert report["debtors_at_end"] == report["distinct_debtors"] == 500 + 2 * (500 - 167)

    again = report["reimport"]
    assert (again["label"], again["file"]) == ("month 3 again", "month_3.csv")
    assert (again["status"], again["imported"], again["duplicates"]) == ("done", 0, 2000)
    assert report["charges_expected"] == report["charges_imported"] == 6000
    assert report["charges_at_end"] == again["charges_after"] == 6000
    assert [set(goal) for goal in report["goals"]] == [{"goal", "met", "detail"}] * 4
