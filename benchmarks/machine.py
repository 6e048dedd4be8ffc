"""What a benchmark ran on, for its record: the same command reads 2.5 times apart on different days here, and a
figure is only comparable with one from the same machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, cores, whether bf16 is native (detect's and inpaint's `auto` precision), torch's version and
    threads, and the load average when the record was written."""
    import torch

    from pipeline.stages.detect_infer import cpu_has_native_bf16

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "bf16_native": cpu_has_native_bf16(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": list(os.getloadavg())}
