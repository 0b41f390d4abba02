"""What the browser tests need: the app on a free port, Debian's Chromium, the page URLs.

Modelled on Streamlit's own e2e_playwright/conftest.py: the server is a subprocess on a
free port, ready once /_stcore/health answers, and its output is shown when it fails to
start. Waits are on the app's own signals (its script state, a text, an element),
never on the clock.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamlit.source_util import page_icon_and_name

from tests.support.network import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
START_TIMEOUT_SECONDS = 45


def playwright_and_chromium():
    """Playwright's sync API, or a skip of the calling test module saying what is missing."""
    import pytest

    api = pytest.importorskip(
        "playwright.sync_api",
        reason="the browser tests need playwright (pip install -r requirements-dev.txt)",
    )
    if not CHROMIUM.exists():
        pytest.skip(
            f"the browser tests drive Debian's Chromium at {CHROMIUM}: apt-get install chromium",
            allow_module_level=True,
        )
    return api


def registered_pages(app_file: Path = PROJECT_ROOT / "app.py") -> dict[str, str]:
    """The pages app.py gives st.navigation, as {script path: URL path}.

    The URL path is the one st.Page uses: "" for the default page, else `url_path=` if
    given, else inferred from the file name ("pages/0_Overview.py" -> "Overview").
    """
    pages: dict[str, str] = {}
    for node in ast.walk(ast.parse(app_file.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Page"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        script = node.args[0].value
        options = {
            keyword.arg: keyword.value.value
            for keyword in node.keywords
            if isinstance(keyword.value, ast.Constant)
        }
        url_path = options.get("url_path") or page_icon_and_name(Path(script))[1]
        pages[script] = "" if options.get("default") else str(url_path).strip("/")
    return pages


class StreamlitApp:
    """`streamlit run app.py` on a free port; `url` is where a browser finds it.

    `port` is for an app whose URL must be known before it starts (st.login's
    redirect_uri, registered with the identity provider): pick it with free_port().
    """

    def __init__(self, *, env: dict[str, str], log_file: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        env = {**env, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_file.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(self.port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def wait_until_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Return once /_stcore/health says ok; raise with the server's output if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {self.process.returncode} before it was "
                    f"ready. Its output:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)  # polling a socket, not waiting for the page
        raise RuntimeError(
            f"streamlit did not answer /_stcore/health within {timeout:.0f} s. "
            f"Its output:\n{self.output()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def running_app(
    env: dict[str, str], *, log_file: Path, port: int | None = None
) -> Iterator[StreamlitApp]:
    app = StreamlitApp(env=env, log_file=log_file, port=port)
    try:
        try:
            app.wait_until_healthy()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)  # the server's output, in pytest's report
            raise
        yield app
    finally:
        app.stop()


def wait_for_script(page, timeout_ms: float = 30_000) -> None:
    """Wait until the app is connected and no script run is in progress."""
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
        "[data-test-script-state='notRunning']",
        timeout=timeout_ms,
    )


def metric(page, label: str):
    """The value element of the st.metric labelled `label`."""
    return (
        page.get_by_test_id("stMetric")
        .filter(has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
        .get_by_test_id("stMetricValue")
    )


class Screenshots:
    """Numbered full-page screenshots of one test, kept under test-artifacts/browser/."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def take(self, page, step: str) -> Path:
        """The whole page: Streamlit scrolls inside stMain, so the window is stretched."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        size = page.viewport_size
        height = page.evaluate(
            "() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight"
        )
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        try:
            page.screenshot(path=str(path))
        finally:
            page.set_viewport_size(size)
        return path

    @contextmanager
    def on_failure(self, page, step: str) -> Iterator[None]:
        """Take a screenshot of the screen as it was when the body failed, then re-raise.

        A screenshot that cannot be taken (the browser gone) is named on the original
        error instead of replacing it.
        """
        try:
            yield
        except Exception as failure:
            try:
                path = self.take(page, step)
            except Exception as screenshot_error:  # noted on the failure
                failure.add_note(f"no screenshot of the failure: {screenshot_error!r}")
            else:
                failure.add_note(f"screenshot of the failure: {path}")
            raise
