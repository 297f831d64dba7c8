"""Whether a process we wait on is still alive, for the wait_*.py scripts beside
this file (run by path, so this directory is on their sys.path)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """A zombie counts as dead: the process has exited, only its parent has not
    collected it yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
