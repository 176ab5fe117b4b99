"""`parity run`: the daemon with its HTTP endpoints, metrics and (optionally) periodic reconciles."""

from __future__ import annotations

from parity.core.config import ParityConfig
from parity.daemon.app import DaemonApp
from parity.logging import configure_logging


def run_daemon(config: ParityConfig, *, log_level: str = "info") -> int:
    configure_logging(log_level)
    DaemonApp(config).run()
    return 0
