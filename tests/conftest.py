"""Shared fixtures: the real data beside the repo (skipped cleanly where absent), quiet offline Prefect."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# 90 s is ample on an idle 2-core machine (first start took up to 18 s) but not beside a training run;
# the harness counts only its own sleeps, so a busy machine waits longer than this in wall time.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Stages run on an in-process thread pool in tests (no cluster start-up per test); the local-cluster
# default is tested on its own in test_cluster_and_object_store.py.
os.environ.setdefault("RETOUCH_DASK_SCHEDULER", "threads")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test where it is absent."""
    from lab.paintings import shared_data_dir

    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}")
    return root


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights manifest with small untrained networks under the shipped names (fast stage tests)."""
    from models.registry import create_model
    from models.weights import Tiling, save_weights

    manifest = tmp_path_factory.mktemp("weights") / "manifest.json"
    torch.manual_seed(0)
    det_args = {"decoder_channels": [16, 16, 16, 16, 8]}
    inp_args = {"base_channels": 8, "depth": 4, "max_channels": 32}
    from pipeline.stages.adapt import ADAPT_BASE
    from pipeline.stages.detect import DEFAULT_WEIGHTS

    detector = create_model("resunet", **det_args)
    for name in dict.fromkeys(("detector-resunet18", DEFAULT_WEIGHTS, ADAPT_BASE)):  # ensemble, defaults
        save_weights(detector, name=name, architecture="resunet", arch_args=det_args, tiling=Tiling(256, 32),
                     manifest_path=manifest)
    save_weights(create_model("pconvunet", **inp_args), name="inpainter-pconv", architecture="pconvunet",
                 arch_args=inp_args, tiling=Tiling(128, 32), manifest_path=manifest)
    return manifest


@pytest.fixture()
def tiny_weights(tiny_manifest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stages use the tiny manifest (through $RETOUCH_WEIGHTS_MANIFEST) for this test."""
    monkeypatch.setenv("RETOUCH_WEIGHTS_MANIFEST", str(tiny_manifest))
    return tiny_manifest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server and database for all flow tests of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


@pytest.fixture()
def one_torch_thread():
    """Tiny tensors: one thread is faster, and two spin badly when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def refused_in_one_line() -> Callable[[list[str], str], None]:
    """Check that `retouch ARGS` exits 2 with `message` on one line and no traceback."""

    def check(args: list[str], message: str) -> None:
        from typer.testing import CliRunner

        from flows.cli import app

        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output

    return check
