"""One local service process: spawned detached, logs to a file in the state dir, stopped by PID.

Services outlive the `parity dev up` command that started them, so everything needed to stop
one later (its PID) is written to `<state>/<name>.pid`; `stop()` works from that file alone.
`LocalService` is what the services with a port (Postgres, Kafka, DynamoDB Local, Prometheus,
Alertmanager) share around their process: its PID, stop, SIGKILL, restart, the wait until ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from parity.core.errors import ParityError


class ServiceError(ParityError):
    """A local service could not be started, became unready, or could not be stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], bool] | None = None, log: Path | None = None) -> float:
    """Poll `check` until true; returns seconds waited. Fails fast when the process died."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        if alive is not None and not alive():
            raise ServiceError(f"{what}: process exited before it was ready{_tail(log)}")
        if time.monotonic() - start > timeout:
            raise ServiceError(f"{what}: not ready after {timeout:.0f}s{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f" (see {log}):\n" + "\n".join(text)


@dataclass
class ManagedProcess:
    """A detached service process, addressed by name inside a state directory."""

    name: str
    state_dir: Path
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid
        return pid is not None and pid_alive(pid)

    def start(self) -> int:
        if self.alive():
            raise ServiceError(f"{self.name} already runs (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        with self.log_path.open("ab") as log:
            # A new session: Ctrl-C in the terminal that ran `parity dev up` must not reach it,
            # and it must survive that command's exit.
            self._popen = subprocess.Popen(
                list(self.argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.cwd, start_new_session=True, user=self.user,
            )
        self.pid_path.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is None or not pid_alive(pid):
            raise ServiceError(f"{self.name} is not running")
        os.kill(pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGCONT first, so a SIGSTOPped service can act on it); SIGKILL after timeout."""
        pid = self.pid
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, self.stop_signal)
            if not self._wait_exit(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 5.0)
        self.pid_path.unlink(missing_ok=True)

    def kill9(self) -> None:
        """SIGKILL, as a crash would: no cleanup of any kind happens."""
        pid = self.pid
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 5.0)
        self.pid_path.unlink(missing_ok=True)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen is not None and self._popen.pid == pid:
                if self._popen.poll() is not None:
                    return True
            elif not pid_alive(pid):
                return True
            time.sleep(0.05)
        return False


@dataclass
class LocalService(ABC):
    """A service on 127.0.0.1:`port` run by `process`, ready once it answers a request."""

    port: int
    process: ManagedProcess
    startup_seconds: float = 0.0  # what its last start (or adoption) waited until it was ready

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @abstractmethod
    def ready(self) -> bool:
        """Whether it answers now; raising counts as not yet (see `wait_until`)."""

    @abstractmethod
    def start(self) -> None:
        """Start the process and wait until it is ready."""

    def until_ready(self, timeout: float, what: str) -> float:
        """Seconds until `ready()`; fails at once, with its log's tail, should the process exit."""
        return wait_until(self.ready, timeout, what, self.process.alive, self.process.log_path)

    def stop(self) -> None:
        self.process.stop()

    def kill9(self) -> None:
        self.process.kill9()

    def restart(self) -> None:
        self.stop()
        self.start()
