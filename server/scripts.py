"""Install the shell programs git runs for the server (hooks) with their exec bit, which package data may lose."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


def install_script(source: Path, target_dir: Path) -> Path:
    """Copy `source` into `target_dir` under its own name, replacing any copy whole (never half-written)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    temporary = target_dir / f".{source.name}.{os.getpid()}.{threading.get_ident()}"
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)
    return target
