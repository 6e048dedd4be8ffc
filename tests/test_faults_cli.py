"""Fault injection at the command line: an unreachable or silent Prefect API, a full disk, an existing file, a
stage that was never run. Each failure is one `error:` line on stderr, fast (no retries), exit 2, and the
disk is left as it was; the traceback is in the error log."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.engine.runner import EngineConfig

QUIET = EngineConfig(workers=1, progress=False)
REPO = Path(__file__).resolve().parents[1]


def one_error_line(result: object, code: int = 2) -> str:
    """The single stderr line of a failed CliRunner result (asserting exit code and that it is one line)."""
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("silent", [False, True])
def test_unreachable_or_silent_prefect_api_fails_in_seconds(silent: bool, silent_server: int, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import app

    url = f"http://127.0.0.1:{silent_server if silent else closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "s.zarr")])
    assert time.monotonic() - started < 10
    line = one_error_line(result)
    assert f"the Prefect API at {url} (PREFECT_API_URL) is unreachable" in line
    assert "unset PREFECT_API_URL to run on a temporary local server" in line
    assert list(tmp_path.iterdir()) == []


def test_only_transient_errors_are_retried() -> None:
    from flows.common import is_transient_error
    from pipeline.errors import InputError

    for exc in (OSError(errno.ENOSPC, "No space left on device", "/out/x"), FileExistsError(17, "exists", "/o"),
                PermissionError(13, "denied", "/o"), OSError(errno.EROFS, "read-only"), InputError("f", "bad"),
                OSError("tifffile: truncated"), ValueError("bad")):
        assert not is_transient_error(exc), exc
    for exc in (ConnectionResetError("s3 hiccup"), TimeoutError(), OSError(errno.ETIMEDOUT, "timed out"),
                OSError(errno.EIO, "I/O error")):
        assert is_transient_error(exc), exc


def test_error_lines_name_the_path_and_keep_bugs_tracebacks_in_the_log(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli.common import error_line

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert error_line(OSError(errno.ENOSPC, "No space left on device", "/out/restored.tif")) == (
        "/out/restored.tif: No space left on device; free some space or write elsewhere", 2)
    assert error_line(FileExistsError(errno.EEXIST, "File exists", "/out")) == (
        "/out: File exists; remove it or choose another path", 2)
    assert error_line(NotADirectoryError(errno.ENOTDIR, "Not a directory", "scan.png")) == (
        "scan.png: Not a directory; it is a file where a folder (a store, an output folder) is needed: choose "
        "another path", 2)
    try:
        raise KeyError("surprise")
    except KeyError as exc:
        line, code = error_line(exc)
    assert code == 1 and line == f"KeyError: 'surprise' (a bug; traceback in {tmp_path / 'retouch-error.log'})"
    assert "raise KeyError" in (tmp_path / "retouch-error.log").read_text()


def test_ctrl_c_prints_one_line_and_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from flows.cli.common import clean_errors

    @clean_errors
    def stage() -> None:
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as stop:
        stage()
    assert stop.value.exit_code == 130
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "same command" in lines[0]


def test_paths_print_as_they_are_not_as_markup_or_emoji(tmp_path: Path) -> None:
    # "[bold]" is a rich style and ":b:" an emoji code: printed through markup, both vanished from the paths
    import shutil

    from data_catalog.schema import default_catalog_path
    from flows.cli import app

    odd = tmp_path / "scan [bold]v2 :b: [i]"
    odd.mkdir()
    store = odd / "x.zarr"
    line = one_error_line(CliRunner().invoke(app, ["verify", str(store)]))
    assert line.startswith(f"error: {store}: ")
    catalog = odd / "catalog :b: [red].yaml"
    shutil.copy(default_catalog_path(), catalog)
    shutil.copytree(default_catalog_path().parent / "samples", odd / "samples")
    result = CliRunner().invoke(app, ["catalog", "validate", str(catalog)])
    assert result.exit_code == 0 and result.stdout.startswith(f"{catalog}: "), result.output


def test_cli_runs_keep_prefect_failures_off_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from flows.settings import quiet_failures_on_console

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        path = quiet_failures_on_console()
        console = [h for h in root.handlers if type(h).__name__ == "PrefectConsoleHandler"]
        assert console and path == tmp_path / "retouch-error.log"

        def shown(level: int, msg: str) -> bool:
            return all(f.filter(logging.LogRecord("prefect.flow_runs", level, "", 0, msg, None, None))
                       for f in console[0].filters)

        assert shown(logging.WARNING, "slow disk")
        assert not shown(logging.ERROR, "Finished in state Failed('boom')")
        assert not shown(logging.INFO, "Beginning flow run")
        logging.getLogger("prefect").error("stage failed")
        assert "stage failed" in path.read_text()
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
            else:
                handler.filters = [f for f in handler.filters if type(f).__name__ != "_WarningsOnly"]


def test_telemetry_is_off_unless_the_user_chose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.settings import configure_prefect

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    monkeypatch.delenv("PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY", raising=False)
    configure_prefect()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY"] == "false"
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    configure_prefect()
    assert os.environ["DO_NOT_TRACK"] == "0"


@pytest.mark.parametrize("command", [["rerun"], ["run"], ["detect"], ["train", "inpainter"]])
def test_boolean_options_show_as_flags(command: list[str]) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    flags = [line for line in result.output.splitlines() if "--force" in line or "--no-flow" in line]
    assert result.exit_code == 0 and flags and not any("<bool>" in line for line in flags)


@pytest.fixture(scope="module")
def stores(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """'ingested': a store with scan/ only; 'restored': one through inpaint (tiny networks, 48x64 px)."""
    from pipeline.stages.detect import DetectConfig, detect
    from pipeline.stages.ingest import IngestConfig, ingest
    from pipeline.stages.inpaint_stage import InpaintStageConfig, inpaint_store

    root = tmp_path_factory.mktemp("faults")
    source = root / "scan.png"
    source.write_bytes(imagecodecs.png_encode(np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8)))
    paths = {"ingested": str(root / "ingested.zarr"), "restored": str(root / "restored.zarr")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETOUCH_WEIGHTS_MANIFEST", str(tiny_manifest))
        for store in paths.values():
            ingest(source, store, IngestConfig(chunk=64), QUIET)
        detect(paths["restored"], DetectConfig(tile=64, overlap=16, halo=16, tta=1), QUIET)
        inpaint_store(paths["restored"], InpaintStageConfig(tile=64, overlap=16, halo=16), QUIET)
    return paths


def test_stage_errors_say_what_to_do(prefect_harness: None, stores: dict[str, str], tmp_path: Path) -> None:
    from flows.cli import app

    store = stores["ingested"]
    line = one_error_line(CliRunner().invoke(app, ["inpaint", store]))
    assert line == f"error: {store}/damage: not there yet: run `retouch detect {store}` first"
    missing = str(tmp_path / "nowhere.zarr")
    line = one_error_line(CliRunner().invoke(app, ["detect", missing]))
    assert line.startswith(f"error: {missing}: no such store") and not Path(missing).exists()
    other = tmp_path / "other.png"
    other.write_bytes(imagecodecs.png_encode(np.zeros((48, 64, 3), np.uint8)))
    before = sorted(p.name for p in Path(store).rglob("*"))
    line = one_error_line(CliRunner().invoke(app, ["ingest", str(other), store]))
    assert line == (f"error: {store}: already holds a different scan (another file or other parameters): write "
                    "elsewhere (`retouch run SCAN --out DIR`, or another STORE) or pass --force to replace it")
    assert sorted(p.name for p in Path(store).rglob("*")) == before


def test_run_refuses_unknown_detector_weights_before_writing_anything(tmp_path: Path) -> None:
    from flows.cli import app

    out = tmp_path / "out"
    line = one_error_line(CliRunner().invoke(app, ["run", "--out", str(out), "--weights", "nope"]))
    assert "no weights named 'nope'" in line and "detector-resunet18-paint7" in line
    assert not out.exists()


def test_a_stage_refuses_weights_of_the_other_kind(tmp_path: Path) -> None:
    # `detect --weights inpainter-pconv` and `inpaint --weights detector-...` failed inside the network's forward
    from flows.cli import app
    from models.registry import KINDS
    from models.weights import WeightsError, get_entry, load_manifest

    assert {KINDS.get(e.architecture) for e in load_manifest().values()} == {"detector", "inpainter"}
    with pytest.raises(WeightsError, match="'inpainter-pconv' holds inpainter weights .*not a detector"):
        get_entry("inpainter-pconv", kind="detector")
    with pytest.raises(WeightsError, match="holds detector weights .*not an inpainter .*inpainter-pconv"):
        get_entry("detector-resunet18-paint7", kind="inpainter")
    assert get_entry("inpainter-pconv", kind="inpainter").name == "inpainter-pconv"
    out = tmp_path / "out"
    line = one_error_line(CliRunner().invoke(app, ["run", "--out", str(out), "--weights", "inpainter-pconv"]))
    assert "not a detector" in line and not out.exists()


def test_export_onto_a_file_or_a_full_disk_fails_at_once_naming_the_path(
        prefect_harness: None, stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.cli import app

    target = tmp_path / "taken"
    target.write_text("not a folder")
    started = time.monotonic()
    line = one_error_line(CliRunner().invoke(app, ["export", stores["restored"], str(target)]))
    assert time.monotonic() - started < 5  # no retries (they waited 5 + 30 + 120 s)
    assert line == f"error: {target}: File exists; remove it or choose another path"
    assert target.read_text() == "not a folder"

    def disk_full(path: Path, image: np.ndarray, icc_profile: bytes | None = None) -> None:  # write_png's signature
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("pipeline.stages.export.write_png", disk_full)
    out = tmp_path / "export"
    started = time.monotonic()
    line = one_error_line(CliRunner().invoke(app, ["export", stores["restored"], str(out)]))
    assert time.monotonic() - started < 5
    assert line == (f"error: {out}/.export.partial/preview-scan.png: No space left on device; free some space "
                    "or write elsewhere")
    assert not (out / "restored.tif").exists() and not (out / "summary.json").exists()
    with get_client(sync_client=True) as client:
        names = [run.name for run in client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=20)]
    assert "restored · export" in names  # readable flow run names: scan id and stage


@pytest.mark.slow
def test_a_real_cli_failure_prints_one_line_and_logs_the_traceback(stores: dict[str, str], tmp_path: Path) -> None:
    """The whole process (its own temporary Prefect server, ~20 s): stderr is the one line, nothing else."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    store = stores["ingested"]
    done = subprocess.run([sys.executable, "-c", "from flows.cli import app; app()", "inpaint", store],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {store}/damage: not there yet: run `retouch detect {store}` first"]
    assert "Traceback" in (tmp_path / "prefect" / "retouch-error.log").read_text()


def test_more_workers_than_this_machine_can_hold_are_refused_before_any_work(tmp_path: Path) -> None:
    # 500 in-process Dask workers on 2 cores never all started: the run hung
    from pydantic import ValidationError

    from flows.params import EngineParams
    from pipeline.engine.runner import MAX_WORKERS_PER_CORE, local_cores

    most = MAX_WORKERS_PER_CORE * local_cores()
    assert EngineParams(workers=most).workers == most
    with pytest.raises(ValidationError, match="more than 4 per core"):
        EngineParams(workers=most + 1)


@pytest.mark.parametrize("address", ["nonsense", "http://scheduler:8786", "tcp://host:port"])
def test_a_malformed_dask_address_is_a_setting_error_naming_it(address: str) -> None:
    import dask

    from pipeline.engine.runner import run_tasks
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=f"Dask scheduler address '{address}'"):
        run_tasks([dask.delayed(int)(1)], "t", EngineConfig(address=address, progress=False))


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--chunk", "100", "chunk: Input should be a multiple of 16"),  # was reported as a bug, exit 1
    ("--pixel-size-um", "inf", "pixel_size_um: Input should be a finite number"),  # was written as Infinity
    ("--pixel-size-um", "nan", "pixel_size_um: Input should be a finite number"),
])
def test_ingest_refuses_a_chunk_or_pixel_size_it_cannot_write(tmp_path: Path, option: str, value: str,
                                                              message: str) -> None:
    from flows.cli import app
    from pipeline.stages.ingest import IngestConfig

    source = tmp_path / "scan.png"
    source.write_bytes(imagecodecs.png_encode(np.full((40, 40, 3), 128, np.uint8)))
    store = tmp_path / "scan.zarr"
    line = one_error_line(CliRunner().invoke(app, ["ingest", str(source), str(store), option, value]))
    assert message in line and not store.exists()
    with pytest.raises(ValueError, match="positive finite"):
        IngestConfig(pixel_size_um=float(value) if option == "--pixel-size-um" else float("inf"))


def test_serve_refuses_a_limit_below_one_before_starting() -> None:
    # a limit of -1 reached Prefect's runner, which failed to start (reported as a bug, exit 1)
    from flows.cli import app

    result = CliRunner().invoke(app, ["serve", "--limit", "-1"])
    assert result.exit_code == 2 and "--limit" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("params", "message"), [
    ({"tile": 64}, "overlap (64) must be smaller than tile (64)"),
    ({"tile": 100}, "tile: Input should be a multiple of 32"),
])
def test_detect_tiles_the_stage_cannot_run_are_parameter_errors(params: dict, message: str) -> None:
    # both were reported as bugs (exit 1) from inside the stage
    from pydantic import ValidationError

    from flows.cli.common import error_line
    from flows.params import DetectParams, InpaintParams

    with pytest.raises(ValidationError) as err:
        DetectParams(**params)
    assert error_line(err.value) == (message, 2)
    with pytest.raises(ValidationError, match="overlap"):
        InpaintParams(tile=40)


@pytest.mark.parametrize("command", [["review", "store.zarr"], ["server"]])
def test_a_port_outside_1_65535_is_a_usage_error(command: list[str]) -> None:
    # `retouch review S --port 99999` failed in bind(), reported as a bug
    from flows.cli import app

    result = CliRunner().invoke(app, [*command, "--port", "99999"])
    assert result.exit_code == 2 and "--port" in result.output and "Traceback" not in result.output
