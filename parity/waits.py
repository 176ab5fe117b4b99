"""A wait that lasts more than a few seconds says what it waits for.

Through the standard library's logging (logger `parity.wait`): in `parity run` that is a JSON line
like any other; in the one-shot commands, which configure no logging, Python's last-resort handler
prints the bare message on stderr (never stdout, which may carry `--json`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

ANNOUNCE_AFTER_S = 3.0

log = logging.getLogger("parity.wait")


@contextmanager
def announced(what: str, *, gives_up_after: str = "", after_s: float = ANNOUNCE_AFTER_S) -> Iterator[None]:
    """Log `waiting for <what> ...` once if the block is still running after `after_s`."""
    tail = f" (gives up after {gives_up_after})" if gives_up_after else ""
    timer = threading.Timer(after_s, log.warning, args=(f"waiting for {what}{tail}",))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
