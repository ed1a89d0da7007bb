"""The extension agent's bubblewrap sandbox, run for real: /tmp is its own (the run's tmp directory), but a program
kept under /tmp (a checkout there, as CI's) still runs from where it is."""
from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from control.services.agent_process import in_sandbox


def test_a_program_under_tmp_runs_and_sees_only_its_own_part_of_tmp(tmp_path):
    """Here the run directory is under /tmp itself (as in the tests and CI): the agent's /tmp is then in memory,
    where the run's own tmp bound there held itself (`find /tmp`: 'File system loop detected')."""
    assert tmp_path.is_relative_to("/tmp")
    program = tmp_path / "checkout" / "agent.py"
    program.parent.mkdir()
    run_dir = tmp_path / "data" / "runs" / "r1"
    program.write_text("import os, sys\nfrom pathlib import Path\n"
                       "print(Path(__file__).name, Path(sys.stdin.read()).exists())\n"
                       "Path('/tmp/mine.txt').write_text('scratch')\n"
                       "ids = lambda path: (os.stat(path).st_dev, os.stat(path).st_ino)\n"
                       f"print(ids('/tmp') == ids({str(run_dir / 'tmp')!r}))\n")  # find: 'File system loop
    elsewhere = Path("/tmp") / f"driftstone-other-{uuid.uuid4().hex}"
    elsewhere.write_text("another run's file\n")
    (run_dir / "work").mkdir(parents=True)
    (run_dir / "tmp").mkdir()
    try:
        argv = in_sandbox([sys.executable, str(program)], run_dir, run_dir / "work", [tmp_path / "data"])
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, input=str(elsewhere))
    finally:
        elsewhere.unlink()
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["agent.py", "False", "False"]
    assert not Path("/tmp/mine.txt").exists()


def test_the_agents_temporary_files_are_on_disk_in_its_run_directory(tmp_path):
    """Where the run directory is elsewhere (the data directory of a server), the agent's /tmp is its run's tmp:
    on disk and gone with the run, not in the machine's memory."""
    shared = tmp_path / "shared-tmp"  # stands for /tmp, which the run directory is not in
    (shared / "other-runs-file").parent.mkdir()
    (shared / "other-runs-file").write_text("not yours\n")
    run_dir = tmp_path / "data" / "runs" / "r1"
    (run_dir / "tmp").mkdir(parents=True)
    program = (f"from pathlib import Path\nprint(sorted(p.name for p in Path({str(shared)!r}).iterdir()))\n"
               f"Path({str(shared)!r}, 'mine.txt').write_text('scratch')\n")
    argv = in_sandbox([sys.executable, "-c", program], run_dir, run_dir, [tmp_path / "data"], scratch=[shared])
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"
    assert (run_dir / "tmp" / "mine.txt").read_text() == "scratch"
    assert sorted(p.name for p in shared.iterdir()) == ["other-runs-file"]


def test_a_blob_directory_reached_through_a_link_is_hidden_where_it_is(tmp_path):
    """The link's own path was hidden: under the sandbox's own /tmp its target was gone and bubblewrap could not
    mount there (every run failed); the target is what an agent must not read."""
    from types import SimpleNamespace

    from control.services.extension_runs import _server_data
    from storage.settings import Settings

    real = tmp_path / "real-blobs"
    real.mkdir()
    (real / "secret").write_text("another organization's file\n")
    link = tmp_path / "elsewhere" / "blobs"
    link.parent.mkdir()
    link.symlink_to(real)
    settings = Settings(data_dir=tmp_path / "data", blob_url=link.as_uri())
    hidden = _server_data(SimpleNamespace(settings=settings))
    assert real in hidden and link not in hidden
    run_dir = tmp_path / "data" / "runs" / "r1"
    (run_dir / "tmp").mkdir(parents=True)
    program = f"import pathlib; print(pathlib.Path({str(link / 'secret')!r}).exists())"
    argv = in_sandbox([sys.executable, "-c", program], run_dir, run_dir, hidden)
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "False", ran.stderr


@pytest.mark.parametrize("network", [True, False])
def test_without_network_the_agent_reaches_nothing_not_even_the_hosts_loopback(tmp_path, network):
    """Where the database or Redis listen on the host's loopback without a password, an agent sharing the
    network could reach them (Redis's jobs run as the server); DRIFTSTONE_EXTENSION_NETWORK=none cuts it off."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    run_dir = tmp_path / "data" / "runs" / "r1"
    (run_dir / "tmp").mkdir(parents=True)
    program = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=5)\n    print('reached')\n"
               "except OSError:\n    print('cut off')\n" % listening.getsockname()[1])
    try:
        argv = in_sandbox([sys.executable, "-c", program], run_dir, run_dir, [tmp_path / "data"], network=network)
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        listening.close()
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == ("reached" if network else "cut off")
