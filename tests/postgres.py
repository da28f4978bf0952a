"""A real PostgreSQL server for the tests: Debian's postgresql, a cluster in a directory of the test
run's own, listening only on 127.0.0.1 (a free port) with its unix socket in that directory.

One server per pytest session; each test gets a fresh database (CREATE DATABASE is a file copy of
the template, a few milliseconds). As root the server runs as the `postgres` user (PostgreSQL
refuses to run as root). Without PostgreSQL the PostgreSQL variants skip, loudly; with
HOMEIQ_REQUIRE_REAL_SERVERS=1 (CI) that is a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from .helpers import free_port

SUPERUSER = "postgres"
MISSING = (
    "PostgreSQL is not installed (Debian: apt-get install postgresql; looked for initdb in "
    "$HOMEIQ_POSTGRES_BIN, on PATH and in /usr/lib/postgresql/*/bin): the PostgreSQL variants of the "
    "database tests are NOT run"
)


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: HOMEIQ_POSTGRES_BIN if set, else PATH, else the newest Debian version."""
    chosen = os.environ.get("HOMEIQ_POSTGRES_BIN")
    if chosen is not None:
        return Path(chosen) if (Path(chosen) / "initdb").exists() else None
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@dataclass
class PostgresServer:
    """A running cluster; `url(name)` is a SQLAlchemy URL of one of its databases."""

    bin: Path
    directory: Path
    port: int
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True)

    def create_database(self, prefix: str = "test", template: str = "template1") -> str:
        """A new, empty database (a copy of `template`); its name."""
        name = f"{prefix}_{next(self._names)}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # ends leftover connections

    def log_tail(self, lines: int = 30) -> str:
        log = self.directory / "postgres.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def postgres_server(durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throw-away cluster; stop it and delete its directory afterwards. Not `durable`
    (the tests): fsync and synchronous commit off; `durable` (benchmarks): PostgreSQL's defaults."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError(MISSING)
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="homeiq-postgres-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"running as root, but there is no {SUPERUSER!r} user to run PostgreSQL as") from None
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bin_dir, directory, free_port())
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"], "initdb")
        # Loopback and a socket in our own directory only. Durability settings off: test data only.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={directory} "
            "-c max_connections=200 -c timezone=UTC -c log_min_messages=warning"
            " -c autovacuum=off"  # its worker on a template database would make CREATE DATABASE fail
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run([str(bin_dir / "pg_ctl"), "-D", str(server.data), "-l", str(directory / "postgres.log"), "-o", options,
              "-w", "-t", "60", "start"], "pg_ctl start")
        started = True
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
            try:
                server.admin().close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        if started:
            subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


