"""The C heap keeps what a forward pass freed for the next one (glibc): a worker thread's later passes find
their activations' pages already there instead of faulting them in again, in this process and in those it
starts; and `release_if_holding` hands the free pages back above its limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.engine.memory import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, sys, threading
from pipeline.engine.memory import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
import torch  # starts a thread of its own: after keep_freed_memory, as the retouch command does
torch.set_num_threads(1)
conv = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 2, 1))
x = torch.rand(1, 3, 768, 768)  # 75 MB activations: glibc maps blocks this large apart by default
faults = []
def work():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        with torch.inference_mode():
            conv(x)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(sum(faults[2:]))
"""

RELEASE = """
import numpy as np, psutil
from pipeline.engine.memory import keep_freed_memory, release_if_holding
np._core.multiarray._set_madvise_hugepage(False)
assert keep_freed_memory()
keep = np.ones(2 ** 10)
block = np.ones(2 ** 25)  # 256 MB
after = np.ones(2 ** 10)  # allocated after the block: the heap cannot shrink from its top
del block
rss = psutil.Process().memory_info().rss
release_if_holding(2 ** 40)
held = psutil.Process().memory_info().rss
release_if_holding(0)
print(rss - held, held - psutil.Process().memory_info().rss)
"""


def _run(script: str, mode: str = "", env: dict[str, str] | None = None) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", script, mode], cwd=REPO, capture_output=True, text=True,
                          check=True, env={**clean, "PYTHONPATH": str(REPO), **(env or {})})
    return [int(v) for v in done.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_later_forward_passes_reuse_the_memory_once_the_heap_keeps_it() -> None:
    (default,) = _run(SCRIPT, "default")
    assert default > 4 * 2**26 // 4096  # the control: every pass faults its activations in again
    for mode, env in (("kept", None), ("default", ENVIRONMENT)):  # set in this process; inherited
        (faults,) = _run(SCRIPT, mode, env)
        assert faults < default / 4, f"{mode} {env}: {faults} pages faulted in again (default: {default})"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_free_pages_are_handed_back_above_the_limit_only() -> None:
    below, above = _run(RELEASE)
    assert below < 2**24 and above > 2**27
