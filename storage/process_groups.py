"""Child processes started as a group of their own (start_new_session=True), so that what they start goes with them."""
from __future__ import annotations

import os
import signal
import subprocess


def kill_group(process: subprocess.Popen) -> None:
    """Kill the group of `process` (everything it started that is still there) and reap `process`."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
