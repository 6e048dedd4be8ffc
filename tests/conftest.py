"""Shared fixtures: the real data beside the repo (skipped cleanly where absent), quiet offline Prefect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test where it is absent."""
    from pipeline.paintings import shared_data_dir

    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}")
    return root
