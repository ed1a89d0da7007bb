"""The extension agent's bubblewrap sandbox, run for real: /tmp is its own, but a program kept under /tmp (a
checkout there, as CI's) still runs from where it is."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from control.services.agent_process import in_sandbox


def test_a_program_under_tmp_runs_and_sees_only_its_own_part_of_tmp(tmp_path):
    assert tmp_path.is_relative_to("/tmp")
    program = tmp_path / "checkout" / "agent.py"
    program.parent.mkdir()
    program.write_text("import sys\nfrom pathlib import Path\n"
                       "print(Path(__file__).name, Path(sys.stdin.read()).exists())\n")
    elsewhere = Path("/tmp") / f"driftstone-other-{uuid.uuid4().hex}"
    elsewhere.write_text("another run's file\n")
    run_dir = tmp_path / "data" / "runs" / "r1"
    (run_dir / "work").mkdir(parents=True)
    try:
        argv = in_sandbox([sys.executable, str(program)], run_dir, run_dir / "work", [tmp_path / "data"])
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, input=str(elsewhere))
    finally:
        elsewhere.unlink()
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["agent.py", "False"]
