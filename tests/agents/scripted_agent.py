"""An agent program for extension runs in the tests: it does what the lines of its prompt (standard input) say.

The server's part of a run (the checkout, the process, the output, the commit) is what the tests test; the
agent is the operator's program by design, and a language model cannot run here, so this one follows a script:
  write PATH TEXT | append PATH TEXT | delete PATH | chmod+x PATH | symlink PATH TARGET | mkdir PATH | rmdir PATH
  artifact PATH TEXT (into $DRIFTSTONE_ARTIFACTS_DIR) | symlink-artifact (a link to /etc/passwd there)
  print TEXT | print-env | print-prompt | print-file PATH | big PATH BYTES | fail CODE TEXT | sleep SECONDS
Other lines (the prose of a prompt) are ignored.
"""
import os
import sys
import time
from pathlib import Path

prompt = sys.stdin.read()
for line in prompt.splitlines():
    words = line.split(" ", 2)
    command, args = words[0], words[1:]
    if command in ("write", "append"):
        path = Path(args[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if command == "append" else "w") as handle:
            handle.write((args[1] if len(args) > 1 else "") + "\n")
    elif command == "delete":
        os.remove(args[0])
    elif command == "chmod+x":
        os.chmod(args[0], 0o755)
    elif command == "symlink":
        os.symlink(args[1], args[0])
    elif command == "artifact":
        path = Path(os.environ["DRIFTSTONE_ARTIFACTS_DIR"]) / args[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((args[1] if len(args) > 1 else "") + "\n")
    elif command == "symlink-artifact":
        os.symlink("/etc/passwd", Path(os.environ["DRIFTSTONE_ARTIFACTS_DIR"]) / "leak")
    elif command == "rmdir":
        os.rmdir(args[0])
    elif command == "mkdir":
        os.makedirs(args[0], exist_ok=True)
    elif command == "big":
        Path(args[0]).write_bytes(b"x" * int(args[1]))
    elif command == "print":
        print(" ".join(args))
    elif command == "print-env":
        for name, value in sorted(os.environ.items()):
            print(f"{name}={value}")
    elif command == "print-prompt":
        print(prompt)
    elif command == "print-file":
        print(Path(args[0]).read_text())
    elif command == "fail":
        print(args[1] if len(args) > 1 else "failed", file=sys.stderr)
        sys.exit(int(args[0]))
    elif command == "sleep":
        time.sleep(float(args[0]))
