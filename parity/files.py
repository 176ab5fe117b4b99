"""Private files: everything parity writes holds customer keys and non-redacted values.

The state directory, the reconcile report directory and its run directories are 0700; the state
database (and SQLite's -wal/-shm), the drift log, reports, checkpoints and spill files are 0600.
Modes are given explicitly at creation (`os.open(..., 0o600)`, `mkdir(mode=0o700)`) rather than
through a process umask: the umask is process-wide, and tests, the demo and the bench build these
stores in processes whose umask parity does not own.

Existing paths with wider modes (written by an older parity, or created by hand) are tightened
when they are parity's own (a file it writes, a directory it is configured to own) and belong to
this user, with a warning naming the old mode. A directory that is only the parent of a
configured file (the drift log's) is never changed: it may be /var/log or a home directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("parity.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        # chmod would change the link's target, which may be anything (run as root, /etc/...).
        log.warning("private_path_is_a_symlink", path=str(path), note="mode not checked or changed")
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return  # a device or pipe configured as the drift log (/dev/stdout ...): not a file parity owns
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode == 0:
        return
    if st.st_uid != os.geteuid():
        log.warning("private_path_too_open", path=str(path), mode=oct(current), wanted=oct(mode),
                    note="not owned by this user: left as is")
        return
    os.chmod(path, current & mode)
    log.warning("private_path_tightened", path=str(path), was=oct(current), now=oct(current & mode))


def private_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) as 0700, or tighten it when it exists."""
    path = Path(path)
    if not path.exists():
        path.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
        # mkdir's mode is masked by the umask, which can only remove bits: 0700 or narrower.
    _tighten(path, DIR_MODE)
    return path


def parent_dir(path: str | Path) -> None:
    """The parent of a configured file: created 0700 when missing, never changed when it exists."""
    parent = Path(path).parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)


def private_file(path: str | Path) -> Path:
    """Tighten an existing file of parity's to 0600 (a new one is created 0600 by `open_private`)."""
    _tighten(Path(path), FILE_MODE)
    return Path(path)


def open_private(path: str | Path, flags: int, *, tighten: bool = True) -> int:
    """os.open with mode 0600 for a new file; an existing wider file is tightened first (unless
    the caller did that once already: an append per batch need not stat the file each time)."""
    if tighten:
        private_file(path)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)


def write_private(path: str | Path, data: bytes) -> None:
    """Write (create or truncate) a whole file readable by this user only."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
