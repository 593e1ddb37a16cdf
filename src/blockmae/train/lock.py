"""One writer per run directory: a lock file that names its holder, and that a dead holder does not keep.

`RUN_DIR/.lock` is created exclusively (O_EXCL) by the process that writes the run and holds its pid,
host and start time. A second process refuses at once and says who holds it. A lock left by a process
that died (kill -9, a crash) on this host is taken over with a note, so a later resume is never blocked.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..config import ConfigError

LOCK = ".lock"
_held: set[Path] = set()


class RunDirLocked(ConfigError):
    """Another live process is writing this run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def acquire(run_dir: Path) -> None:
    """Take `run_dir`'s lock for this process (re-entrant), or raise RunDirLocked naming the holder."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
            except (OSError, ValueError):
                holder = {}
            pid, host = holder.get("pid"), holder.get("host")
            if pid == me["pid"] and host == me["host"]:
                _held.add(path)
                return
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                print(f"blockmae: {path} was left by process {pid}, which is gone; taking it over", file=sys.stderr,
                      flush=True)
                path.unlink(missing_ok=True)
                continue
            raise RunDirLocked(
                f"{run_dir} is in use by process {pid} on {host} (since {holder.get('since', '?')}); wait for it to "
                f"finish or choose another --out (if that process is gone, delete {path})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        _held.add(path)
        return
    raise RunDirLocked(f"could not take {path}: other processes keep creating it")


def holds(run_dir: Path) -> bool:
    """Whether this process holds `run_dir`'s lock."""
    return Path(run_dir) / LOCK in _held


def release(run_dir: Path) -> None:
    """Give `run_dir`'s lock back if this process holds it."""
    path = Path(run_dir) / LOCK
    if path in _held:
        _held.discard(path)
        path.unlink(missing_ok=True)


@atexit.register
def _release_all() -> None:
    for path in list(_held):
        path.unlink(missing_ok=True)
    _held.clear()
