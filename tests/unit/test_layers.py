"""DESIGN.md's import direction, checked by import-linter contracts in setup.cfg."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_importing_wsgi_reads_no_environment(monkeypatch):
    import importlib
    import os

    seen = []
    original = os.environ.get
    monkeypatch.setattr(os.environ, "get", lambda key, default=None: (seen.append(key), original(key, default))[1])
    import wsgi
    importlib.reload(wsgi)
    assert not [k for k in seen if k.startswith("DRIFTSTONE_")]
