"""Prefect flows under one temporary server: the restore DAG, skipping, force, a failing stage, retries, the
catalog sweep, the deployments, training metrics and `retouch rerun` (tiny networks, a 256x256 scan)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
from typer.testing import CliRunner

from flows.params import DetectParams, EngineParams, ExportParams, IngestParams, InpaintParams
from pipeline.io.store import group_info
from pipeline.stages.sweep import output_paths, plan_item

SIZE = 256
# small model tiles for the tiny networks; 128-px chunks: a 2x2 chunk grid
PARAMS: dict[str, Any] = {"ingest": IngestParams(chunk=128), "detect": DetectParams(tile=256),
                          "inpaint": InpaintParams(tile=128, overlap=32),
                          "engine": EngineParams(workers=2, progress=False)}
GROUPS = ("scan", "damage", "restored")


def write_scan(path: Path, seed: int = 5, size: int = SIZE) -> Path:
    """A smooth RGB painting-like image with synthetic craquelure and paint loss."""
    from lab.synthesis.synthetic_damage import synthesize_damage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.5 + 0.3 * np.sin(5 * yy + c) * np.cos(4 * xx) for c in range(3)], axis=-1)
    clean = (np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, synthesize_damage(clean, seed=seed)[0], photometric="rgb")
    return path


@dataclass(frozen=True)
class FirstRun:
    root: Path
    source: Path
    out: Path
    store: str
    export_dir: str
    state: Any


def copy_outputs(run: FirstRun, scan_id: str) -> tuple[str, str]:
    """The first run's store and export under another scan id (a store to change without disturbing others)."""
    store, export_dir = output_paths(run.out, scan_id)
    shutil.copytree(run.store, store)
    shutil.copytree(run.export_dir, export_dir)
    return store, export_dir


def markers(store: str) -> dict[str, Any]:
    return {name: group_info(store, name) for name in GROUPS}


def subflows(flow_run_id: Any) -> dict[str, Any]:
    """{flow name: flow run} of the subflow runs of a flow run, read back through the Prefect API."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=50)
        return {client.read_flow(run.flow_id).name: run for run in runs}


def artifacts(flow_run_id: Any) -> dict[str, dict[str, Any]]:
    """{key: the latest artifact with that key} created in a flow run (REST API: the client's filters join
    on task runs, which drops artifacts made by the flow itself)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "sort": "CREATED_DESC", "limit": 100}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return {a["key"]: a for a in reversed(response.json())}


@pytest.fixture(scope="module")
def first_run(prefect_harness: None, tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """One restore of scan `a` into `<out>/a.zarr` and `<out>/a-export`, as `retouch run` names them."""
    from flows.restore import restore_flow

    root = tmp_path_factory.mktemp("flows")
    source = write_scan(root / "scans" / "a.tif")
    store, export_dir = output_paths(root / "out", "a")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETOUCH_WEIGHTS_MANIFEST", str(tiny_manifest))
        state = restore_flow(str(source), store, export=ExportParams(out_dir=export_dir), **PARAMS,
                             return_state=True)
    return FirstRun(root, source, root / "out", store, export_dir, state)


def test_restore_runs_the_four_stages_as_subflows_with_artifacts(first_run: FirstRun) -> None:
    assert first_run.state.is_completed(), first_run.state.message
    results = first_run.state.result()
    assert [name for name, r in results.items() if not r["skipped"]] == ["ingest", "detect", "inpaint", "export"]
    assert all(markers(first_run.store).values())
    assert (Path(first_run.export_dir) / "summary.json").is_file()
    runs = subflows(first_run.state.state_details.flow_run_id)
    assert sorted(runs) == ["detect", "export", "ingest", "inpaint"]
    assert {run.state.name for run in runs.values()} == {"Completed"}
    assert not any(run.name.endswith("skipped") for run in runs.values())
    assert set(artifacts(runs["detect"].id)) >= {"detect-progress", "detect-summary", "damage-per-class"}
    previews = artifacts(runs["export"].id)["before-after"]["data"]
    assert previews.count("data:image/jpeg;base64,") == 3


def test_second_run_skips_every_stage_visibly_with_its_key(first_run: FirstRun, tiny_weights: Path) -> None:
    from flows.restore import restore_flow

    state = restore_flow(str(first_run.source), first_run.store, export=ExportParams(out_dir=first_run.export_dir),
                         **PARAMS, return_state=True)
    assert state.is_completed()
    assert all(r["skipped"] for r in state.result().values())
    runs = subflows(state.state_details.flow_run_id)
    assert {name: run.state.name for name, run in runs.items()} == dict.fromkeys(runs, "Skipped") and len(runs) == 4
    assert all(run.name.endswith(" · skipped") for run in runs.values())  # the UI graph's node label says it
    key = state.result()["detect"]["key"]
    assert key[:16] in runs["detect"].state.message
    summary = artifacts(runs["detect"].id)["detect-summary"]["data"]
    assert "skipped" in summary and key in summary


def test_force_recomputes_a_stage_to_the_same_bytes(first_run: FirstRun, tiny_weights: Path) -> None:
    from flows.inpaint import inpaint_flow

    args = (first_run.store, PARAMS["inpaint"], PARAMS["engine"])
    before = group_info(first_run.store, "restored")
    forced = inpaint_flow(*args, force=True, return_state=True)
    assert forced.name == "Completed" and not forced.result()["skipped"]
    assert forced.result()["digests"] == before["digests"]
    assert group_info(first_run.store, "restored")["provenance"] != before["provenance"]  # a new run's record
    assert inpaint_flow(*args, return_state=True).name == "Skipped"


def test_failing_stage_names_the_file_and_leaves_other_outputs_intact(first_run: FirstRun, tiny_weights: Path,
                                                                      tmp_path: Path) -> None:
    from flows.restore import restore_flow

    bad_mask = tmp_path / "edited-mask.tif"
    tifffile.imwrite(bad_mask, np.zeros((100, SIZE), np.uint8))
    before, summary = markers(first_run.store), (Path(first_run.export_dir) / "summary.json").read_bytes()
    params = {**PARAMS, "inpaint": PARAMS["inpaint"].model_copy(update={"mask": str(bad_mask)})}
    state = restore_flow(str(first_run.source), first_run.store, export=ExportParams(out_dir=first_run.export_dir),
                         **params, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert "edited-mask.tif" in str(error) and f"scan is {SIZE}x{SIZE}" in str(error)
    runs = subflows(state.state_details.flow_run_id)
    assert {name: run.state.type.value for name, run in runs.items()} == {
        "ingest": "COMPLETED", "detect": "COMPLETED", "inpaint": "FAILED"}  # export never started
    assert markers(first_run.store) == before
    assert (Path(first_run.export_dir) / "summary.json").read_bytes() == summary


def test_only_transient_storage_errors_are_retried() -> None:
    from prefect.states import Failed

    from flows.common import is_transient
    from pipeline.io.locking import StoreBusyError

    def failed(exc: Exception) -> Any:
        return Failed(data=exc)

    assert is_transient(None, None, failed(ConnectionResetError("s3 hiccup")))
    assert not is_transient(None, None, failed(FileNotFoundError("gone")))
    assert not is_transient(None, None, failed(StoreBusyError("s.zarr", "busy")))
    assert not is_transient(None, None, failed(ValueError("bad parameter")))


def test_catalog_sweep_restores_a_changed_scan_and_skips_an_unchanged_one(first_run: FirstRun,
                                                                          tiny_weights: Path) -> None:
    from flows.deployments import catalog_sweep_flow

    copy_outputs(first_run, "b")  # b's store was made from an older version of b.tif (a's pixels)
    changed = write_scan(first_run.root / "scans" / "b.tif", seed=6, size=128)  # one chunk: a quick restore
    catalog = write_catalog(first_run.root / "catalog.yaml", {"a": "scans/a.tif", "b": "scans/b.tif"})
    before = markers(first_run.store)
    assert plan_item("b", str(changed), first_run.out).reason == "source changed"
    state = catalog_sweep_flow(str(catalog), str(first_run.out), **PARAMS, return_state=True)
    assert state.result() == {"a": "unchanged, skipped", "b": "restored (source changed)"}
    assert markers(first_run.store) == before
    item = plan_item("b", str(changed), first_run.out)
    assert item.last_sha256 == item.source_sha256 and not item.changed
    exported = json.loads((first_run.out / "b-export" / "summary.json").read_text())
    assert exported["source"] == changed.name and exported["source_sha256"] == item.source_sha256
    table = json.loads(artifacts(state.state_details.flow_run_id)["catalog-sweep"]["data"])
    assert [row["outcome"] for row in table] == ["unchanged, skipped", "restored (source changed)"]


def test_catalog_sweep_fails_naming_a_missing_source_after_the_other_scans(first_run: FirstRun,
                                                                           tiny_weights: Path) -> None:
    from flows.deployments import catalog_sweep_flow

    catalog = write_catalog(first_run.root / "missing.yaml", {"gone": "scans/gone.tif", "a": "scans/a.tif"})
    state = catalog_sweep_flow(str(catalog), str(first_run.out), **PARAMS, return_state=True)
    assert state.is_failed()
    assert "1 of 2 scans failed: gone:" in state.message and "gone.tif" in state.message
    table = json.loads(artifacts(state.state_details.flow_run_id)["catalog-sweep"]["data"])
    assert {row["scan"]: row["outcome"] for row in table}["a"] == "unchanged, skipped"


def write_catalog(path: Path, sources: dict[str, str]) -> Path:
    entry = {"title": "t", "creator": "c", "date": "1630", "institution": "i", "accession_number": "1",
             "licence": "CC0"}
    path.write_text(yaml.safe_dump({"scans": [{"id": k, "source": v, **entry} for k, v in sources.items()]}))
    return path


def test_deployments_schedule_the_sweep_and_offer_the_reruns(tmp_path: Path) -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.deployments import build_deployments, rerun_detect_flow, rerun_inpaint_flow

    deployments = {d.name: d for d in build_deployments("*/30 * * * *", "cat.yaml", str(tmp_path), "Europe/Paris")}
    assert sorted(deployments) == ["adapt", "adapt-undo", "catalog-sweep", "export", "rerun-detect", "rerun-inpaint"]
    sweep = deployments["catalog-sweep"]
    assert sweep.schedules[0].schedule.cron == "*/30 * * * *"
    assert sweep.schedules[0].schedule.timezone == "Europe/Paris"
    assert sweep.parameters == {"catalog": str(Path("cat.yaml").resolve()), "out": str(tmp_path)}
    assert deployments["rerun-inpaint"].entrypoint == "flows.deployments.rerun_inpaint_flow"
    form = parameter_schema(rerun_inpaint_flow)  # the form the UI shows for a run of the deployment
    assert form.required == ["store"] and "edited mask" in form.properties["mask"]["description"]
    detect_form = parameter_schema(rerun_detect_flow).properties
    assert detect_form["threshold"]["default"] == 0.5 and detect_form["weights"].get("default") is None
    assert detect_form["tta"]["default"] == 2 and detect_form["tta"]["enum"] == [1, 2, 4, 8]
    assert all(d.schedules == [] for name, d in deployments.items() if name != "catalog-sweep")


def test_rerun_cli_runs_a_stage_with_new_parameters(first_run: FirstRun, tiny_weights: Path,
                                                    tmp_path: Path) -> None:
    from flows.cli import app

    store, _ = copy_outputs(first_run, "rerun")
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[20:40, 150:200] = 255  # one chunk (0, 1)
    tifffile.imwrite(tmp_path / "edited.tif", mask)
    runner = CliRunner()
    result = runner.invoke(app, ["rerun", "inpaint", store, "--mask", str(tmp_path / "edited.tif"), "--tile=128",
                                 "--overlap", "32", "--dilate", "0", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "restored:" in result.output and "1 of 4 chunks inpainted" in result.output
    restored = group_info(store, "restored")
    assert restored["mask"] == "mask_edited" and restored["summary"]["hole_pixels"] == 20 * 50
    again = runner.invoke(app, ["rerun", "inpaint", store, "--mask", str(tmp_path / "edited.tif"), "--tile=128",
                                "--overlap", "32", "--dilate", "0", "--workers", "2"])
    assert again.exit_code == 0 and "nothing changed; --force recomputes" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--thresold", "0.3"], "'--thresold' is not a detect parameter; valid: --weights, --threshold"),
    (["--threshold", "1.5"], "--threshold: Input should be less than 1"),
    (["--threshold"], "--threshold needs a value"),
])
def test_rerun_cli_refuses_bad_parameters_with_the_valid_ones(args: list[str], message: str) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["rerun", "detect", "s.zarr", *args])
    assert result.exit_code == 2 and message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "fp64"], "precision: Input should be 'auto', 'fp32' or 'bf16'"),
    (["--device", "cuda"], "device 'cuda' asked for, but this torch build sees no CUDA GPU"),
    (["--device", "tpu"], "device must be 'cpu' or 'cuda[:N]'"),
])
def test_detect_cli_refuses_a_bad_precision_or_an_absent_gpu_in_one_line(args: list[str], message: str) -> None:
    import torch

    from flows.cli import app

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(app, ["detect", "s.zarr", *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_serve_refuses_a_bad_cron_or_an_unreachable_server_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["serve", "--cron", "every night"])
    assert result.exit_code == 2 and "--cron" in result.output
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "no Prefect API answers at http://127.0.0.1:9/api" in result.output


def test_training_flow_publishes_its_final_metrics(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.train_detector as train_detector
    from flows.train import train_detector_flow

    summary = {"steps": 1800, "best": {"step": 1500, "mean_f1": 0.71, "craquelure": {"f1": 0.64}},
               "shipped": {"name": "detector-resunet18", "sha256": "ab" * 32}}
    monkeypatch.setattr(train_detector, "train_detector", lambda cfg: summary)  # the loop itself: test_resunet
    state = train_detector_flow({"steps": 1800}, return_state=True)
    assert state.result() == summary
    rows = json.loads(artifacts(state.state_details.flow_run_id)["train-detector-metrics"]["data"])
    assert {"metric": "best.craquelure.f1", "value": 0.64} in rows and {"metric": "steps", "value": 1800.0} in rows
    assert not any(row["metric"].startswith("shipped.name") for row in rows)
