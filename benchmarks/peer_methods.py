"""The three detect runs that bench_peers.py compares, one per subprocess: `python -m benchmarks.peer_methods
METHOD SCAN STORE OUT THREADS TTA [coarse|plain]`, from the repository root. It prints one JSON line: the
timed seconds, the CPU seconds of the process and its children, the peak RSS of the process tree (sampled
every 0.1 s from start to end, model loading included), ru_maxrss, and the versions used.

- ours: `detect(STORE)` with the default DetectConfig (its default weights, tile = chunk + 2 x halo, the halo
  cropped) apart from `tta` and, when a 7th argument is given, the coarse paint-loss pass (`coarse` or `plain`;
  the peers have no such pass, so `plain` runs the same network passes as they do), on a local Dask cluster
  of THREADS single-threaded workers started before the clock. Its outputs land in STORE (probabilities,
  labels, their pyramids, provenance).
- monai: the same network (models.weights.load_model: safetensors, sha256 checked) under
  `monai.inferers.sliding_window_inference` over the whole scan read from SCAN into memory, roi = the stage's
  tile, windows `chunk` px apart (overlap = 2 x halo), Gaussian blending, the same views and precision
  (`tile_probabilities`); probabilities and labels written to OUT/monai.zarr as the stage writes them.
- tiatoolbox: the same network wrapped as a tiatoolbox ModelABC under the 2.x `SemanticSegmentor.run` in WSI
  mode on SCAN: input patch = the stage's tile, output patch = stride = its chunk (the halo cropped as the
  stage does), no tissue mask, batch 1, torch.compile off (eager, as the others); output_type 'zarr' with
  probabilities into OUT/tiatoolbox/.

monai and tiatoolbox are imported only here, inside their functions: the repository does not depend on them.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import models  # noqa: F401  (torchvision importable next to the CPU torch, before tiatoolbox imports it)
from benchmarks.bench_restore import RSS_SAMPLER
from benchmarks.cpu_time import process_cpu_seconds
from pipeline.stages.detect import DEFAULT_COARSE_LOSS, DEFAULT_WEIGHTS, DetectConfig, probabilities_and_labels

METHODS = ("ours", "monai", "tiatoolbox")


def versions(*names: str) -> dict[str, str]:
    return {name: metadata.version(name) for name in ("torch", "numpy", "zarr", *names)}


def stage_config(tta: int, coarse_loss: bool = DEFAULT_COARSE_LOSS) -> DetectConfig:
    """The detect stage's default config with `tta` views and the coarse pass on or off, resolved for this
    machine (precision decided)."""
    return DetectConfig(weights=DEFAULT_WEIGHTS, tta=tta, coarse_loss=coarse_loss).resolved()


def geometry(store: str, config: DetectConfig) -> tuple[int, int]:
    """(tile, stride) of one model input as the stage runs it: a chunk with its halo, and the chunk."""
    import zarr

    chunk = zarr.open_group(store, mode="r")["scan/0"].chunks[1]
    tile = chunk + 2 * config.halo
    if tile > config.tile:
        raise ValueError(f"chunk {chunk} + 2 x halo {config.halo} > tile {config.tile}: the stage would sub-tile")
    return tile, chunk


def run_ours(scan: str, store: str, out: Path, threads: int, tta: int,
             coarse_loss: bool = DEFAULT_COARSE_LOSS) -> dict[str, Any]:
    from pipeline.engine.runner import EngineConfig, close_local_clusters, local_cluster
    from pipeline.stages.detect import detect

    config = stage_config(tta, coarse_loss)
    engine = EngineConfig(workers=threads, torch_threads=1, progress=False)
    if engine.scheduler != "threads":
        local_cluster(engine)  # before the clock, as `retouch run` starts it once for all its stages
    start, cpu = time.perf_counter(), process_cpu_seconds()
    detect(store, config, engine, force=True)
    row = {"seconds": time.perf_counter() - start, "cpu_s": process_cpu_seconds() - cpu,
           "output": f"{store}/damage/probabilities/0", "layout": f"{threads} workers x 1 thread",
           "precision": config.precision, "coarse_loss": config.coarse_loss, "versions": versions("dask")}
    close_local_clusters()
    return row


def _predictor(model: Any, bf16: bool, tta: int) -> Any:
    """(B, 3, h, w) float in [0, 1] -> (B, 2, h, w) probabilities averaged over the views (the stage's call)."""
    import torch

    from pipeline.stages.detect_infer import tile_probabilities

    def predict(x: torch.Tensor) -> torch.Tensor:
        return tile_probabilities(model, x.contiguous(memory_format=torch.channels_last), bf16, tta)

    return predict


def write_like_stage(out: Path, prob: np.ndarray, config: DetectConfig, chunk: int) -> None:
    """(2, H, W) float probabilities -> `out` (zarr v3, zstd 3): uint8 probabilities and labels, the stage's rule."""
    import zarr
    from zarr.codecs import ZstdCodec

    (prob8, labels), _ = probabilities_and_labels(prob, config.threshold, 0)
    group = zarr.open_group(out, mode="w")
    for name, array in (("probabilities", prob8), ("labels", labels)):
        target = group.create_array(name, shape=array.shape, dtype=np.uint8, chunks=(1, chunk, chunk),
                                    compressors=ZstdCodec(level=3))
        target[...] = array


def run_monai(scan: str, store: str, out: Path, threads: int, tta: int) -> dict[str, Any]:
    import tifffile
    import torch
    from monai.inferers import sliding_window_inference

    from models.weights import load_model

    torch.set_num_threads(threads)
    config = stage_config(tta)
    tile, stride = geometry(store, config)
    overlap = (tile - stride - 0.5) / tile  # MONAI steps int(tile * (1 - overlap)) = stride px
    start, cpu = time.perf_counter(), process_cpu_seconds()
    model, _ = load_model(config.weights)
    image = torch.from_numpy(tifffile.imread(scan))  # (H, W, 3) uint8, the whole scan
    x = image.permute(2, 0, 1)[None].float().div_(255)  # (1, 3, H, W): MONAI blends in the input's dtype
    del image
    read_s = time.perf_counter() - start
    with torch.inference_mode():
        prob = sliding_window_inference(x, (tile, tile), 1, _predictor(model, config.precision == "bf16", tta),
                                        overlap=overlap, mode="gaussian", padding_mode="reflect")
    del x
    write_like_stage(out / "monai.zarr", prob[0].numpy(), config, stride)
    return {"seconds": time.perf_counter() - start, "cpu_s": process_cpu_seconds() - cpu, "read_s": read_s,
            "output": str(out / "monai.zarr/probabilities"), "roi": tile, "step": stride, "blend": "gaussian",
            "precision": config.precision, "versions": versions("monai", "tifffile")}


def tia_model(model: Any, bf16: bool, tta: int, crop: int) -> Any:
    """The network as a tiatoolbox ModelABC: NHWC uint8 patches in, the centre `crop` px of the probabilities
    (NHWC float32) out."""
    import torch
    from tiatoolbox.models.models_abc import ModelABC

    predict = _predictor(model, bf16, tta)

    class Detector(ModelABC):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return predict(x)

        @staticmethod
        def infer_batch(net: torch.nn.Module, batch_data: torch.Tensor, *, device: str) -> np.ndarray:
            x = batch_data.to(device).permute(0, 3, 1, 2).float().div_(255)
            with torch.inference_mode():
                prob = net(x)
            h, w = prob.shape[-2:]
            y0, x0 = (h - crop) // 2, (w - crop) // 2
            return prob[:, :, y0 : y0 + crop, x0 : x0 + crop].permute(0, 2, 3, 1).numpy()

    return Detector().eval()


def run_tiatoolbox(scan: str, store: str, out: Path, threads: int, tta: int) -> dict[str, Any]:
    import torch
    from tiatoolbox import rcParam
    from tiatoolbox.models.engine.io_config import IOSegmentorConfig
    from tiatoolbox.models.engine.semantic_segmentor import SemanticSegmentor

    from models.weights import load_model

    torch.set_num_threads(threads)
    rcParam["torch_compile_mode"] = "disable"
    config = stage_config(tta)
    tile, stride = geometry(store, config)
    resolution = [{"units": "baseline", "resolution": 1.0}]
    ioconfig = IOSegmentorConfig(input_resolutions=resolution, output_resolutions=resolution,
                                 patch_input_shape=(tile, tile), patch_output_shape=(stride, stride),
                                 stride_shape=(stride, stride))
    start, cpu = time.perf_counter(), process_cpu_seconds()
    model, _ = load_model(config.weights)
    engine = SemanticSegmentor(model=tia_model(model, config.precision == "bf16", tta, stride), batch_size=1,
                               num_workers=0, device="cpu", verbose=False)
    result = engine.run([Path(scan)], patch_mode=False, ioconfig=ioconfig, save_dir=out / "tiatoolbox",
                        overwrite=True, output_type="zarr", return_probabilities=True, auto_get_mask=False)
    return {"seconds": time.perf_counter() - start, "cpu_s": process_cpu_seconds() - cpu,
            "output": f"{next(iter(result.values())) if isinstance(result, dict) else result}/probabilities",
            "patch_input": tile, "patch_output": stride, "stride": stride, "batch": 1, "torch_compile": "disable",
            "precision": config.precision, "versions": versions("tiatoolbox", "tifffile")}


def main() -> None:
    sampler: dict[str, Any] = {}
    exec(RSS_SAMPLER, sampler)  # noqa: S102  (the benchmarks' shared RSS sampler thread)
    method, scan, store, out = sys.argv[1:5]
    threads, tta = int(sys.argv[5]), int(sys.argv[6])
    if method == "ours":
        coarse = sys.argv[7] == "coarse" if len(sys.argv) > 7 else DEFAULT_COARSE_LOSS
        row = run_ours(scan, store, Path(out), threads, tta, coarse)
    else:
        run = {"monai": run_monai, "tiatoolbox": run_tiatoolbox}[method]
        row = run(scan, store, Path(out), threads, tta)
    time.sleep(0.2)
    row |= {"peak_rss_mb": sampler["peak"][0] / 2**20,
            "ru_maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ru_maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
