"""Against a real Prefect server (`retouch server` on a free loopback port, SQLite in a temporary PREFECT_HOME):
`retouch run` records the restore and its subflows and artifacts; `retouch serve` serves the deployments and a
`rerun-inpaint` and a `catalog-sweep` triggered through the REST API complete; the UI renders the run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml

pytestmark = pytest.mark.slow
RETOUCH = Path(sys.executable).with_name("retouch")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Server:
    url: str  # the UI
    api: str
    env: dict[str, str]  # for clients: PREFECT_API_URL set, tiny weights
    root: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, check: Any, timeout: float, process: subprocess.Popen | None = None,
             log: Path | None = None) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` (with the log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            break
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what}: not reached in {timeout:.0f} s\n{tail}")


def api_get(server: Server, path: str) -> Any:
    import httpx

    response = httpx.get(f"{server.api}{path}", timeout=30)
    return response.json() if response.status_code == 200 else None


def api_post(server: Server, path: str, body: dict[str, Any]) -> Any:
    import httpx

    # A busy server (SQLite) answers 503 for a moment; Prefect's own client retries those, so do we.
    for attempt in range(6):
        response = httpx.post(f"{server.api}{path}", json=body, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(0.5 * 2**attempt)
    response.raise_for_status()
    return response.json()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               RETOUCH_WEIGHTS_MANIFEST=str(tiny_manifest))
    log = root / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(RETOUCH), "server", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("server prints its UI URL", lambda: f"Prefect UI:  {url}" in log.read_text(), 180, process, log)
        yield Server(url, f"{url}/api", {**env, "PREFECT_API_URL": f"{url}/api"}, root)
    finally:
        stop(process)
    assert not any("prefect server start" in p and f"--port {port}" in p for p in _processes())  # stopped too


def _processes() -> list[str]:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()


@pytest.fixture(scope="module")
def restore_run(server: Server) -> dict[str, Any]:
    """`retouch run` of a 256x256 scan against the server; the restore flow run as the API returns it."""
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 30, (256, 256, 3)), 0, 255).astype(np.uint8)
    tifffile.imwrite(server.root / "scan.tif", image, photometric="rgb")
    done = subprocess.run([str(RETOUCH), "run", str(server.root / "scan.tif"), "--out", str(server.root / "out")],
                          env=server.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = api_post(server, "/flow_runs/filter", {"flows": {"name": {"any_": ["restore"]}}, "limit": 10})
    assert len(runs) == 1
    return runs[0]


def test_restore_its_subflows_and_artifacts_are_recorded(server: Server, restore_run: dict[str, Any]) -> None:
    assert restore_run["state"]["type"] == "COMPLETED"
    children = api_post(server, "/flow_runs/filter", {
        "flow_runs": {"parent_flow_run_id": {"any_": [restore_run["id"]]}}, "limit": 10})
    names = {api_get(server, f"/flows/{run['flow_id']}")["name"]: run for run in children}
    assert sorted(names) == ["detect", "export", "ingest", "inpaint"]
    assert {run["state"]["type"] for run in children} == {"COMPLETED"}
    found = api_post(server, "/artifacts/filter", {
        "artifacts": {"flow_run_id": {"any_": [run["id"] for run in children]}}, "limit": 100})
    keys = {a["key"] for a in found}
    assert keys >= {"ingest-summary", "detect-summary", "damage-per-class", "inpaint-summary", "export-summary",
                    "before-after", "detect-progress"}
    progress = [a for a in found if a["key"] == "detect-progress"]
    assert progress and progress[0]["type"] == "progress" and progress[0]["data"] == 100.0


def test_served_deployments_rerun_inpaint_and_sweep_on_request(server: Server, restore_run: dict[str, Any]) -> None:
    out = server.root / "out"
    store = str(out / "scan.zarr")
    mask = np.zeros((256, 256), np.uint8)
    mask[100:140, 30:90] = 255
    tifffile.imwrite(server.root / "edited-mask.tif", mask)
    catalog = server.root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"scans": [{
        "id": "scan", "source": str(server.root / "scan.tif"), "title": "t", "creator": "c", "date": "1630",
        "institution": "i", "accession_number": "1", "licence": "CC0"}]}))
    log = server.root / "serve.log"
    with open(log, "w") as output:
        serving = subprocess.Popen([str(RETOUCH), "serve", "--catalog", str(catalog), "--out", str(out),
                                    "--cron", "0 3 * * *"], env={**server.env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        rerun = wait_for("rerun-inpaint deployment", lambda: api_get(server, "/deployments/name/rerun-inpaint/"
                                                                             "rerun-inpaint"), 180, serving, log)
        sweep = wait_for("catalog-sweep deployment", lambda: api_get(server, "/deployments/name/catalog-sweep/"
                                                                             "catalog-sweep"), 60, serving, log)
        assert [s["schedule"]["cron"] for s in sweep["schedules"]] == ["0 3 * * *"]
        run = api_post(server, f"/deployments/{rerun['id']}/create_flow_run", {
            "parameters": {"store": store, "mask": str(server.root / "edited-mask.tif")}})
        final = wait_for("rerun-inpaint run finishes", lambda: _finished(server, run["id"]), 300, serving, log)
        assert final["state"]["type"] == "COMPLETED", log.read_text()[-3000:]
        from pipeline.io.store import group_info

        restored = group_info(store, "restored")
        assert restored["mask"] == "mask_edited" and restored["summary"]["hole_pixels"] == 40 * 60
        run = api_post(server, f"/deployments/{sweep['id']}/create_flow_run", {})
        final = wait_for("catalog-sweep run finishes", lambda: _finished(server, run["id"]), 300, serving, log)
        assert final["state"]["type"] == "COMPLETED", log.read_text()[-3000:]
        table = api_post(server, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
        assert '"outcome": "unchanged, skipped"' in next(a["data"] for a in table if a["key"] == "catalog-sweep")
    finally:
        stop(serving)


def _finished(server: Server, run_id: str) -> dict[str, Any] | None:
    run = api_get(server, f"/flow_runs/{run_id}")
    return run if run and run["state"]["type"] in TERMINAL else None


def test_ui_renders_the_restore_run(server: Server, restore_run: dict[str, Any], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    from PIL import Image

    page = f"{server.url}/runs/flow-run/{restore_run['id']}"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,900", "--virtual-time-budget=15000"]
    shot = tmp_path / "run.png"
    subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, timeout=180)
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    assert restore_run["name"] in dom and "Completed" in dom and "Can't connect" not in dom
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (900, 1400, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200 and pixels.std() > 5  # not a blank page
