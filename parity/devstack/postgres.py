"""A private PostgreSQL cluster with logical decoding, never the system one on 5432."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from parity.devstack.prereqs import postgres_bindir
from parity.devstack.process import LocalService, ManagedProcess, ServiceError, free_port

# initdb refuses to run as root; the cluster then belongs to Debian's `postgres` user.
_RUN_AS = "postgres" if os.geteuid() == 0 else None


@dataclass
class PostgresService(LocalService):
    """A running private cluster. `dsn` connects as superuser over TCP (trust auth on loopback)."""

    data_dir: Path = field(kw_only=True)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def connect(self, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn, autocommit=autocommit)

    def ready(self) -> bool:
        with psycopg.connect(self.dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def wait_ready(self, timeout: float = 30.0) -> float:
        return self.until_ready(timeout, "postgres")

    def start(self) -> None:
        self.process.start()
        self.startup_seconds = self.wait_ready()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
        self.process.stop(timeout=30.0)

    def replication_slots(self) -> list[str]:
        with self.connect() as conn:
            return [str(r[0]) for r in conn.execute("SELECT slot_name FROM pg_replication_slots")]

    def drop_replication_slots(self, timeout: float = 10.0) -> list[str]:
        """Drop every slot (they are all ours: the cluster is private). An active slot is dropped
        once its walsender is gone, so terminate those first."""
        dropped: list[str] = []
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while True:
                rows = conn.execute("SELECT slot_name, active_pid FROM pg_replication_slots").fetchall()
                if not rows:
                    return dropped
                for name, active_pid in rows:
                    if active_pid is not None:
                        conn.execute("SELECT pg_terminate_backend(%s)", (active_pid,))
                        continue
                    try:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                        dropped.append(str(name))
                    except psycopg.errors.ObjectInUse:
                        pass
                if time.monotonic() > deadline:
                    raise ServiceError(f"postgres: replication slots still present: {rows}")
                time.sleep(0.2)


def _chown_to_runner(path: Path) -> None:
    if _RUN_AS is not None:
        pw = pwd.getpwnam(_RUN_AS)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _check_reachable(path: Path) -> None:
    if _RUN_AS is None:
        return
    probe = subprocess.run(["runuser", "-u", _RUN_AS, "--", "test", "-w", str(path)], check=False)
    if probe.returncode != 0:
        raise ServiceError(
            f"postgres: the OS user {_RUN_AS!r} cannot write {path}; choose a state dir whose parent "
            f"directories are world-searchable (chmod o+x), e.g. under /tmp or the project dir"
        )


def postgres_service(state_dir: Path, port: int | None = None) -> PostgresService:
    """The service object for `<state>/postgres`, initialised (initdb) if needed, not started."""
    state_dir = Path(state_dir).resolve()  # services run with another cwd
    bindir = postgres_bindir()
    data_dir = state_dir / "postgres" / "data"
    if not (data_dir / "PG_VERSION").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        _chown_to_runner(data_dir.parent)
        _chown_to_runner(data_dir)
        _check_reachable(data_dir)
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, user=_RUN_AS, check=False,
        )
        if init.returncode != 0:
            raise ServiceError(f"postgres: initdb failed: {init.stderr.strip()[-800:]}")
    conf = data_dir / "postgresql.auto.conf"
    port = port or _configured_port(conf) or free_port()
    conf.write_text(
        "# written by parity devstack\n"
        f"port = {port}\n"
        "listen_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{data_dir}'\n"
        "wal_level = logical\n"
        "max_replication_slots = 16\n"
        "max_wal_senders = 16\n"
        "fsync = off\n"  # a throwaway test cluster: speed over crash safety of the OS
        "synchronous_commit = off\n"
        "full_page_writes = off\n"
    )
    _chown_to_runner(conf)
    process = ManagedProcess(
        name="postgres", state_dir=state_dir,
        argv=[str(bindir / "postgres"), "-D", str(data_dir)],
        user=_RUN_AS, stop_signal=signal.SIGINT,
    )
    return PostgresService(port=port, data_dir=data_dir, process=process)


def _configured_port(conf: Path) -> int | None:
    if not conf.exists():
        return None
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "port":
            return int(value.strip())
    return None


def start_postgres(state_dir: Path, port: int | None = None) -> PostgresService:
    """Start (or adopt, if already running) the private cluster under `state_dir`."""
    service = postgres_service(state_dir, port)
    if service.process.alive():
        service.wait_ready()
    else:
        service.start()
    return service
