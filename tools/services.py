"""Self-hosted geodata services for users and CI: a throwaway PostgreSQL cluster on loopback with
a Nominatim database and a PostGIS feature database (osm2pgsql, all tags in an hstore), and
``nominatim serve`` on loopback. Public Nominatim allows 1 request/s and Overpass a few thousand
queries a day; rollouts and benchmarks need more, and investigators' queries must not leave the
machine.

``geolocate services up [EXTRACT ...]`` installs what is missing on a Debian machine (PostgreSQL 15,
PostGIS 3, osm2pgsql from apt; Nominatim 5.3.3 with falcon and uvicorn from PyPI), creates the cluster,
imports the extracts (``nominatim import --offline``; ``osm2pgsql --hstore-all``), starts the server
and waits until both answer. It is idempotent: what exists is reused, an import is redone only when
the set of extracts changes. ``down`` stops what ``up`` started, by pid, and checks nothing is left.
Nothing listens on a non-loopback address. State lives in ``$GEOLOCATE_SERVICES_DIR`` (default: the
geolocate cache dir / ``services``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from geolocate.tools.errors import GeolocateError

PG_BIN = Path("/usr/lib/postgresql/15/bin")
APT_PACKAGES = ["postgresql-15", "postgresql-15-postgis-3", "osm2pgsql", "libicu-dev", "pkg-config"]
PIP_PACKAGES = ["nominatim-db==5.3.3", "nominatim-api==5.3.3", "falcon", "uvicorn", "psycopg[binary]"]
NOMINATIM_DB = "nominatim"
FEATURES_DB = "geofeatures"


class ServicesError(GeolocateError, RuntimeError):
    """A service could not be installed, started, imported or stopped; the message says which step."""


@dataclass
class Services:
    """Where the services live and listen (loopback only)."""

    root: Path
    pg_port: int = 55432
    nominatim_port: int = 8088
    user: str = "postgres"  # PostgreSQL refuses to run as root: the cluster runs as this OS user

    @classmethod
    def default(cls) -> Services:
        from geolocate.tools.geonames import cache_dir

        root = Path(os.environ.get("GEOLOCATE_SERVICES_DIR") or cache_dir() / "services")
        return cls(
            root,
            int(os.environ.get("GEOLOCATE_PG_PORT", 55432)),
            int(os.environ.get("GEOLOCATE_NOMINATIM_PORT", 8088)),
        )

    # -- paths and connection strings ------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def project(self) -> Path:
        return self.root / "nominatim"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def nominatim_url(self) -> str:
        return f"http://127.0.0.1:{self.nominatim_port}"

    @property
    def nominatim_domain(self) -> str:
        return f"127.0.0.1:{self.nominatim_port}"

    def dsn(self, db: str = FEATURES_DB) -> str:
        """libpq connection string of a database of the cluster (user root, trust on loopback)."""
        return f"host=127.0.0.1 port={self.pg_port} dbname={db} user={self._db_user()}"

    def _db_user(self) -> str:
        import getpass

        return getpass.getuser()

    # -- helpers
    # ----------------------------------------------------------------------------------------------
    def _run(
        self,
        cmd: list[str],
        step: str,
        as_pg: bool = False,
        env: dict | None = None,
        cwd: Path | None = None,
        log: str | None = None,
    ) -> str:
        if as_pg and os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
        if log:
            (self.logs / log).write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise ServicesError(
                f"{step} failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-800:]}"
            )
        return out.stdout

    def _psql(self, sql: str, db: str = "postgres", as_pg: bool = True) -> str:
        return self._run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres" if as_pg else self._db_user(),
                "-d",
                db,
                "-tAc",
                sql,
            ],
            f"psql: {sql[:60]}",
            as_pg=as_pg,
        )

    # -- install
    # -----------------------------------------------------------------------------------------------
    def install(self) -> list[str]:
        """Install what is missing; returns what was installed."""
        done = []
        from geolocate.tools.doctor import missing_debian_packages

        missing = missing_debian_packages(APT_PACKAGES)
        if missing:
            if os.geteuid() != 0:
                raise ServicesError(
                    f"missing Debian packages {missing}: run as root, or apt-get install them"
                )
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            self._run(["apt-get", "update", "-qq"], "apt-get update", env=env)
            self._run(["apt-get", "install", "-y", "-qq", *missing], "apt-get install", env=env)
            done += missing
        try:
            import falcon  # noqa: F401
            import nominatim_api  # noqa: F401
            import nominatim_db  # noqa: F401
            import psycopg  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            self._run([sys.executable, "-m", "pip", "install", "-q", *PIP_PACKAGES], "pip install Nominatim")
            done += PIP_PACKAGES
        return done

    # -- PostgreSQL
    # ------------------------------------------------------------------------------------------------
    def _pg_running(self) -> bool:
        return (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)]
            ).returncode
            == 0
        )

    def start_postgres(self) -> None:
        import pwd

        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)
        for parent in list(self.root.parents)[:-1]:  # the cluster's user must reach its folder
            try:
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            except PermissionError:
                pass
        pw = pwd.getpwnam(self.user)
        sock = self.root / "sock"
        for d in (self.pgdata, sock):
            d.mkdir(exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chown(self.logs, pw.pw_uid, pw.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
                as_pg=True,
            )
        if self._pg_running() and not (self.pgdata / "postmaster.pid").exists():
            raise ServicesError(
                f"port {self.pg_port} is taken by a PostgreSQL that is not this services folder's "
                f"({self.root}): stop it or set GEOLOCATE_PG_PORT"
            )
        if not self._pg_running():
            opts = (
                f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB "
                "-c maintenance_work_mem=512MB"
            )
            self._run(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.logs / "postgres.log"),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                "start PostgreSQL",
                as_pg=True,
            )
        user = self._db_user()
        if self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'").strip() != "1":
            self._psql(f'CREATE ROLE "{user}" SUPERUSER LOGIN')
        if self._psql("SELECT 1 FROM pg_roles WHERE rolname = 'www-data'").strip() != "1":
            self._psql('CREATE ROLE "www-data" LOGIN')

    # -- imports
    # ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _fingerprint(extracts: list[Path]) -> str:
        h = hashlib.sha256()
        for p in sorted(extracts):
            h.update(p.name.encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()[:16]

    def _marker(self, name: str) -> Path:
        return self.root / f"{name}.imported"

    def _imported(self, db: str, fingerprint: str) -> bool:
        """The database exists in this cluster and holds exactly these extracts."""
        m = self._marker(db)
        return (
            m.exists()
            and m.read_text() == fingerprint
            and self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip() == "1"
        )

    def import_nominatim(self, extracts: list[Path]) -> float | None:
        """``nominatim import --offline`` of the extracts; returns seconds, or None if already done."""
        fp = self._fingerprint(extracts)
        if self._imported(NOMINATIM_DB, fp):
            return None
        self.project.mkdir(exist_ok=True)
        (self.project / ".env").write_text(
            f'NOMINATIM_DATABASE_DSN="pgsql:host=127.0.0.1;port={self.pg_port};dbname={NOMINATIM_DB};user={self._db_user()}"\n'
            'NOMINATIM_DATABASE_WEBUSER="www-data"\n'
        )
        self.stop_nominatim()  # it holds connections to the database being replaced
        self._psql(f"DROP DATABASE IF EXISTS {NOMINATIM_DB} WITH (FORCE)")
        t = time.perf_counter()
        cmd = [
            shutil.which("nominatim") or "nominatim",
            "import",
            "--offline",
            "--threads",
            str(max(1, os.cpu_count() or 1)),
        ]
        for p in extracts:
            cmd += ["--osm-file", str(p)]
        self._run(cmd, "nominatim import", cwd=self.project, log="nominatim-import.log")
        self._marker(NOMINATIM_DB).write_text(fp)
        return time.perf_counter() - t

    def import_features(self, extracts: list[Path]) -> float | None:
        """osm2pgsql of the extracts into the PostGIS feature database (WGS84, all tags in ``tags``)."""
        fp = self._fingerprint(extracts)
        if self._imported(FEATURES_DB, fp):
            return None
        self._psql(f"DROP DATABASE IF EXISTS {FEATURES_DB} WITH (FORCE)")
        self._psql(f"CREATE DATABASE {FEATURES_DB}")
        self._psql(
            "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS hstore;", db=FEATURES_DB
        )
        t = time.perf_counter()
        self._run(
            [
                "osm2pgsql",
                "--create",
                "--latlong",
                "--hstore-all",
                "--multi-geometry",
                "--number-processes",
                "2",
                "-d",
                FEATURES_DB,
                "-H",
                "127.0.0.1",
                "-P",
                str(self.pg_port),
                "-U",
                self._db_user(),
                *map(str, extracts),
            ],
            "osm2pgsql import",
            log="osm2pgsql.log",
        )
        for table in ("planet_osm_point", "planet_osm_line", "planet_osm_polygon"):
            self._psql(
                f"CREATE INDEX IF NOT EXISTS {table}_tags ON {table} USING gin (tags); CREATE INDEX IF "
                f"NOT EXISTS {table}_geog ON {table} USING gist ((way::geography)); ANALYZE {table};",
                db=FEATURES_DB,
                as_pg=False,
            )
        self._marker(FEATURES_DB).write_text(fp)
        return time.perf_counter() - t

    # -- Nominatim server
    # -------------------------------------------------------------------------------------------
    def _pidfile(self) -> Path:
        return self.root / "nominatim-serve.pid"

    def _nominatim_ok(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.nominatim_url}/status", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start_nominatim(self, timeout_s: float = 60.0) -> None:
        if self._nominatim_ok():
            if not self._pidfile().exists():
                raise ServicesError(
                    f"port {self.nominatim_port} is taken by a server that is not this services "
                    "folder's: stop it or set GEOLOCATE_NOMINATIM_PORT"
                )
            return
        log = open(self.logs / "nominatim-serve.log", "ab")
        proc = subprocess.Popen(
            [
                shutil.which("nominatim") or "nominatim",
                "serve",
                "--server",
                f"127.0.0.1:{self.nominatim_port}",
                "--engine",
                "falcon",
            ],
            cwd=self.project,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pidfile().write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._pidfile().unlink(missing_ok=True)
                raise ServicesError(
                    f"nominatim serve exited with {proc.returncode}; see {self.logs / 'nominatim-serve.log'}"
                )
            if self._nominatim_ok():
                return
            time.sleep(0.5)
        self.stop_nominatim()  # never leave a server that does not answer
        raise ServicesError(
            f"nominatim serve did not answer /status within {timeout_s:.0f} s; see "
            f"{self.logs / 'nominatim-serve.log'}"
        )

    # -- the commands
    # ------------------------------------------------------------------------------------------------
    def up(self, extracts: list[Path], log=print) -> dict:
        """Install, start, import and serve; returns timings (None: already done)."""
        extracts = [Path(p).resolve() for p in extracts]
        for p in extracts:
            if not p.is_file():
                raise ServicesError(f"extract not found: {p}")
        timings: dict = {"installed": self.install()}
        log("PostgreSQL ...")
        self.start_postgres()
        log("Nominatim import ...")
        timings["nominatim_import_s"] = self.import_nominatim(extracts)
        log("PostGIS import ...")
        timings["postgis_import_s"] = self.import_features(extracts)
        log("nominatim serve ...")
        self.start_nominatim()
        (self.root / "up.json").write_text(json.dumps({"extracts": [str(p) for p in extracts], **timings}))
        return timings

    def status(self) -> dict:
        return {
            "postgres": self._pg_running(),
            "nominatim": self._nominatim_ok(),
            "pg_port": self.pg_port,
            "nominatim_url": self.nominatim_url,
            "root": str(self.root),
        }

    def stop_nominatim(self) -> None:
        """Stop ``nominatim serve`` (its whole process group), by the pid ``up`` recorded."""
        pid_file = self._pidfile()
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.killpg(pid, signal.SIGTERM)
                for _ in range(50):
                    os.killpg(pid, 0)
                    time.sleep(0.1)
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pid_file.unlink(missing_ok=True)

    def down(self) -> None:
        """Stop nominatim serve and PostgreSQL; raises if anything still answers."""
        self.stop_nominatim()
        if (self.pgdata / "postmaster.pid").exists():
            self._run(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
                "stop PostgreSQL",
                as_pg=True,
            )
        s = self.status()
        if s["postgres"] or s["nominatim"]:
            raise ServicesError(f"services still answer after down: {s}")
