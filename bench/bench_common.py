"""Helpers shared by the benchmark scripts: the CPU name, repeated timing and the docs section update."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from s2ld_core.atomic import write_text_atomic


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor name elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_stage(function: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Run ``function`` ``repeat`` times; return the median and best seconds and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times)), result


def update_docs(path: Path, section: str, body: str) -> None:
    """Replace the ``section`` heading's part of ``path`` (or append it), leaving other sections alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{section}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    write_text_atomic(path, text)
