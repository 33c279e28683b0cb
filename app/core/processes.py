"""Child processes that die with the process that started them."""

from __future__ import annotations

import os
import signal


def parent_death_signal(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """For `preexec_fn` (bind `parent_pid=os.getpid()` before starting the child): the
    child gets `sig` when the process that started it dies, even by SIGKILL (Linux prctl
    PR_SET_PDEATHSIG; elsewhere a no-op)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        # The parent died before prctl took effect.
        os.kill(os.getpid(), sig)
