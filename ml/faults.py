"""Named kill points, so tests can prove that a process killed mid-write loses nothing.

``checkpoint(name)`` kills the calling process with SIGKILL (no ``finally``, no ``atexit``,
no flush: what an OOM kill or a lost machine does) when ``ML_KILL_AT`` names that point, and
does nothing otherwise. It lives in the lowest layer because every layer calls it.
"""

from __future__ import annotations

import os
import signal

KILL_AT_VARIABLE = "ML_KILL_AT"


def checkpoint(name: str) -> None:
    """Die here, at once, if ``ML_KILL_AT`` is ``name``."""
    if os.environ.get(KILL_AT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
