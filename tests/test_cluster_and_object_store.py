"""The same graph on a real Dask cluster (scheduler + 2 workers on loopback) and a store on S3 (moto server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pipeline.engine.runner import EngineConfig
from pipeline.stages.detect import DetectConfig, detect
from pipeline.stages.ingest import IngestConfig, ingest
from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = IngestConfig(chunk=64, top_level_max_side=64)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scan_file(tmp_path: Path) -> Path:
    from lab.synthesis.synthetic_damage import synthesize_damage

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:192, 0:160] / 192
    clean = np.stack([0.5 + 0.3 * np.sin(6 * yy + c) * np.cos(5 * xx) for c in range(3)], axis=-1)
    clean = np.clip((clean + rng.normal(0, 0.02, clean.shape)) * 255, 0, 255).astype(np.uint8)
    damaged, _ = synthesize_damage(clean, seed=5)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, damaged, photometric="rgb", tile=(64, 64))
    return path


def restore_digests(source: Path, store: str, engine: EngineConfig) -> dict[str, str]:
    scan = ingest(source, store, SMALL, engine)
    damage = detect(store, DetectConfig(tile=96, overlap=0, halo=16), engine)  # configs read the manifest env
    restored = inpaint_store(store, InpaintStageConfig(tile=64, overlap=16, dilate=1, halo=16), engine)
    return {"scan": scan.digest, **{f"damage/{k}": v for k, v in damage.digests.items()},
            **{f"restored/{k}": v for k, v in restored.digests.items()}}


@pytest.fixture()
def dask_cluster(tmp_path: Path, tiny_weights: Path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes on loopback; yields the scheduler address."""
    if shutil.which("dask", path=str(BIN)) is None:
        pytest.skip("the dask command is not installed")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "RETOUCH_WEIGHTS_MANIFEST": str(tiny_weights), "DASK_TEMPORARY_DIRECTORY": str(tmp_path)}
    common = {"cwd": REPO, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **common)]
    procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                "--dashboard-address", ":0", "--local-directory", str(tmp_path)], **common)
              for _ in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_restore_on_a_dask_cluster_gives_the_same_bytes_as_local(tmp_path: Path, dask_cluster: str) -> None:
    source = scan_file(tmp_path)
    local = restore_digests(source, str(tmp_path / "local.zarr"), EngineConfig(workers=1, progress=False))
    remote = restore_digests(source, str(tmp_path / "cluster.zarr"),
                             EngineConfig(address=dask_cluster, progress=False))
    assert remote == local


def test_default_local_cluster_gives_the_same_bytes_as_threads(tmp_path: Path, tiny_weights: Path) -> None:
    from pipeline.engine.runner import close_local_clusters

    source = scan_file(tmp_path)
    threads = restore_digests(source, str(tmp_path / "threads.zarr"),
                              EngineConfig(workers=1, progress=False, scheduler="threads"))
    try:  # the default without an address: a LocalCluster (worker threads), started once and reused
        cluster = restore_digests(source, str(tmp_path / "cluster.zarr"),
                                  EngineConfig(workers=2, progress=False, scheduler="cluster"))
    finally:
        close_local_clusters()
    assert cluster == threads


def test_local_cluster_of_worker_processes_gives_the_same_bytes_as_threads(tmp_path: Path,
                                                                        tiny_weights: Path) -> None:
    from pipeline.engine.runner import close_local_clusters, local_cluster

    source = scan_file(tmp_path)
    threads = restore_digests(source, str(tmp_path / "threads.zarr"),
                              EngineConfig(workers=1, progress=False, scheduler="threads"))
    engine = EngineConfig(workers=2, progress=False, scheduler="processes")
    try:  # each worker a process of its own (its own model); the config reaches it with the manifest path
        cluster = local_cluster(engine)
        assert cluster.processes and len(cluster.workers) == 2
        apart = restore_digests(source, str(tmp_path / "processes.zarr"), engine)
        assert local_cluster(engine) is cluster  # started once, reused by every stage
    finally:
        close_local_clusters()
    assert apart == threads


def test_engine_scheduler_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETOUCH_DASK_SCHEDULER", raising=False)
    assert EngineConfig().scheduler == "cluster"
    monkeypatch.setenv("RETOUCH_DASK_SCHEDULER", "threads")
    assert EngineConfig().scheduler == "threads"
    monkeypatch.setenv("RETOUCH_DASK_SCHEDULER", "processes")
    assert EngineConfig().scheduler == "processes"
    monkeypatch.setenv("RETOUCH_DASK_SCHEDULER", "fibres")
    with pytest.raises(ValueError, match="RETOUCH_DASK_SCHEDULER"):
        EngineConfig()


@pytest.fixture()
def s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on loopback with a bucket `scans`; fsspec/s3fs find it through the environment."""
    if shutil.which("moto_server", path=str(BIN)) is None:
        pytest.skip("moto[server] is not installed")
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "moto server did not start"
                time.sleep(0.2)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem(anon=False).mkdir("scans")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_store_on_s3_compatible_server_matches_local_store(tmp_path: Path, tiny_weights: Path,
                                                           s3_endpoint: str) -> None:
    import s3fs

    source = scan_file(tmp_path)
    engine = EngineConfig(workers=2, progress=False)
    local = restore_digests(source, str(tmp_path / "local.zarr"), engine)
    remote = restore_digests(source, "s3://scans/painting.zarr", engine)
    assert remote == local
    fs = s3fs.S3FileSystem(anon=False)
    fs.invalidate_cache()
    assert any(p.endswith(".json") for p in fs.ls("scans/painting.zarr/provenance"))
    assert not fs.exists("scans/painting.zarr/_progress/detect")  # ledgers are cleared when a stage completes
    from pipeline.audit.verify import verify_store

    assert verify_store("s3://scans/painting.zarr").ok  # every chunk digest of the remote store holds
    documents = set(fs.ls("scans/painting.zarr/provenance"))
    ingest(source, "s3://scans/painting.zarr", SMALL, engine, force=True)  # replaces the store...
    fs.invalidate_cache()
    assert documents < set(fs.ls("scans/painting.zarr/provenance"))  # ...keeping its history
