"""A real PostgreSQL server for the Optuna study tests.

Fixtures:

- ``postgres_server`` (session): a ``PostgresServer`` started once for the whole session on a
  free loopback port, in its own temporary data directory, with trust authentication;
  ``.url(dbname)`` builds a URL, ``.create_database()`` makes a fresh database and returns its URL.
- ``postgres_url`` (session): the URL of the server's ``grownet`` database, e.g.
  ``postgresql+psycopg://grownet@127.0.0.1:PORT/grownet``; shared by every test that uses it.
- ``postgres_db`` (function): the URL of a new, empty database (``test_<hex>``) for one test,
  dropped afterwards, so tests never see each other's studies.

The server comes from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``,
the newest version found; ``.ci/run`` installs it). Without it, or without the psycopg driver
(``pip install "grownet[postgres]"``), the tests that use these fixtures are skipped, naming
what is missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_NO_SERVER = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql "
    "package (apt-get install postgresql; .ci/run does)"
)
SKIP_NO_DRIVER = 'psycopg (3) not installed: pip install "grownet[postgres]"'
SKIP_NO_USER = "running as root and there is no 'postgres' user to run the server as"

# Superuser created by initdb and the database the session-wide URL points at.
USER = "grownet"
DATABASE = "grownet"
START_TIMEOUT_S = 60


def _bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, else initdb's directory on PATH."""
    found = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        # Versions sort as numbers: "9.6" < "10" < "15" (as strings "9.6" would be the newest).
        version = tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))
        if version and (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            found.append((version, bindir))
    if found:
        return max(found)[1]
    # Other systems (Homebrew, distributions that put initdb on PATH) need no version lookup.
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _free_port() -> int:
    # The port is free now; another process may take it before the server binds, so the start
    # is retried on a new port when the log says the address is in use.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log empty)"


@dataclass
class PostgresServer:
    bindir: Path
    root: Path  # temporary directory: data/, socket/, server.log; removed at the end
    port: int
    host: str = "127.0.0.1"
    user: str = USER
    run_as: pwd.struct_passwd | None = None  # the unprivileged user when the tests run as root

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = DATABASE) -> str:
        """A SQLAlchemy URL Optuna's RDBStorage accepts (trust auth: no password).

        The driver is named: SQLAlchemy 2.0 maps a bare postgresql:// to psycopg2, 2.1 to psycopg.
        """
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program, as the unprivileged user when we are root."""
        kwargs = {}
        if self.run_as is not None:
            # PostgreSQL refuses to run as root; subprocess drops to the user itself (no su or
            # runuser needed), with no supplementary groups left over from root.
            kwargs = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C"}
        if self.run_as is not None:
            env.update(
                HOME=self.run_as.pw_dir, USER=self.run_as.pw_name, LOGNAME=self.run_as.pw_name
            )
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            # The user may not be able to enter the caller's working directory; initdb and
            # pg_ctl fail without a readable current directory.
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def connect(self, dbname: str = "postgres"):
        import psycopg

        # autocommit: CREATE/DROP DATABASE cannot run inside a transaction.
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    def create_database(self, name: str | None = None) -> str:
        """Create a database (default ``test_<random hex>``) and return its URL."""
        name = name or f"test_{uuid.uuid4().hex}"
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # FORCE (PostgreSQL 13+) ends the connections the test's Optuna engines still
                # pool; without it the drop would fail while they are open.
                force = " WITH (FORCE)" if conn.info.server_version >= 130000 else ""
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
        finally:
            conn.close()

    def start(self) -> None:
        pg_ctl = self.run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-D",
            str(self.datadir),
            "-l",
            str(self.log),
            "-o",
            # Loopback only, on our port, with the socket in our directory (the default
            # /var/run/postgresql may not exist or belong to the system's cluster). Durability
            # is not needed for a throw-away server: fsync off makes CREATE DATABASE and every
            # commit several times faster on a slow disk.
            f"-c listen_addresses={self.host} -p {self.port} -k {self.sockdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        )
        if pg_ctl.returncode != 0:
            raise _StartError(self, "pg_ctl start", pg_ctl)
        # pg_ctl -w waits until the postmaster says it accepts connections; a first real
        # connection also proves the TCP port and trust authentication work.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.connect().close()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL on port {self.port} started but takes no connections: "
                        f"{exc}\n--- {self.log} (last lines) ---\n{_tail(self.log)}"
                    ) from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        # fast: roll back open transactions and disconnect clients (a test's Optuna engine may
        # still hold pooled connections); immediate if that hangs.
        for mode in ("fast", "immediate"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                if (
                    self.run(
                        "pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.datadir), timeout=30
                    ).returncode
                    == 0
                ):
                    return


class _StartError(RuntimeError):
    def __init__(self, server: PostgresServer, what: str, proc: subprocess.CompletedProcess):
        super().__init__(
            f"{what} failed (exit {proc.returncode}) for PostgreSQL in {server.root}, "
            f"port {server.port}:\n{proc.stdout}{proc.stderr}"
            f"--- {server.log} (last lines) ---\n{_tail(server.log)}"
        )
        self.log_tail = _tail(server.log)


def _start_server() -> PostgresServer:
    bindir = _bindir()
    if bindir is None:
        pytest.skip(SKIP_NO_SERVER)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip(SKIP_NO_DRIVER)
    run_as = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")  # created by Debian's postgresql-common
        except KeyError:
            pytest.skip(SKIP_NO_USER)

    # Under /tmp, not pytest's tmp_path_factory: /tmp/pytest-of-root is 0700, so the postgres
    # user could not reach a data directory inside it. /tmp itself is world-traversable, and
    # mkdtemp's 0700 directory is handed to that user below.
    root = Path(tempfile.mkdtemp(prefix="grownet-pg-", dir="/tmp"))
    try:
        (root / "data").mkdir()
        (root / "socket").mkdir()
        if run_as is not None:
            # The server user owns everything below root (it writes the log there too).
            for path in (root, root / "data", root / "socket"):
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        server = PostgresServer(bindir=bindir, root=root, port=_free_port(), run_as=run_as)
        initdb = server.run(
            "initdb",
            "-D",
            str(server.datadir),
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            # --no-locale: the container may lack the caller's locale; --no-sync: nothing
            # here needs to survive a power cut, and syncing costs seconds on a slow disk.
            "--no-locale",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise _StartError(server, "initdb", initdb)
        try:
            for attempt in range(3):
                try:
                    server.start()
                    break
                except _StartError as exc:
                    # Another process took the port between _free_port and the bind.
                    if attempt == 2 or "already in use" not in exc.log_tail:
                        raise
                    server.port = _free_port()
            server.create_database(DATABASE)
        except BaseException:
            server.stop()  # a no-op unless the postmaster got as far as writing its pid file
            raise
        return server
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = _start_server()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(DATABASE)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    yield url
    # Tidiness only (the whole server goes at the end of the session): a drop that fails
    # must not turn a passing test into an error.
    with contextlib.suppress(Exception):
        postgres_server.drop_database(name)
