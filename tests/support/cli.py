"""`python -m billing` run as cron and batch scripts run it: a real process."""

from __future__ import annotations

import subprocess
import sys


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
