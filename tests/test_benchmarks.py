"""The import benchmark, run small against the test server, so it keeps working.

Its timings mean nothing at this size (the goals live in the full-size run, not here);
what is checked is that every step runs and loads what it should (the benchmark raises
otherwise) and that the report's figures agree with one another.
"""

from __future__ import annotations

import json

import pytest

from bench import bench_import


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
