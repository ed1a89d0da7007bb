"""bench/RESULTS.md is shared by the benchmarks: each owns one section between its own markers."""
from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(path: Path, name: str, section: str) -> None:
    """Replace the section between `<!-- name: start -->` and `<!-- name: end -->`, or add it at the end."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{section.rstrip()}\n{end}\n"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        text = before + block + rest.partition(end)[2].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
