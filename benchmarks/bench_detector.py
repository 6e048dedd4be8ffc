"""Inference speed of the shipped detector on one 1024x1024 tile: fp32, channels_last, bf16 autocast.

    .venv/bin/python benchmarks/bench_detector.py [--threads 2] [--runs 5] [--weights detector-resunet18] [--json F]

Prints the median (and min/max) of N timed runs after one warm-up, plus the tiled whole-image path
(`predict_probabilities`, 512-px tiles, 64-px overlap) on a 1024x1024 image, also with 2-view (fp32 and bf16)
and 8-view test-time augmentation (`--tta 2`, `--tta 8`), and with the second of 2 views seen
smaller (`--second-view small-mirror`). Timings on a shared machine vary: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import models  # noqa: F401
from models.weights import load_model
from pipeline.stages.detect import DEFAULT_WEIGHTS
from pipeline.stages.detect_infer import Views, predict_probabilities


def _time(fn, runs: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times),
            "max_ms": 1000 * max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, entry = load_model(args.weights)
    x = torch.rand(1, 3, args.size, args.size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    model_cl = load_model(args.weights)[0].to(memory_format=torch.channels_last)

    def run(m, inp, bf16=False):
        def go():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                m(inp)
        return go

    image = np.random.default_rng(0).random((args.size, args.size, 3)).astype(np.float32)
    results = {
        "weights": entry.name, "sha256": entry.sha256[:16], "tile": args.size, "threads": args.threads,
        "load_average_before": os.getloadavg()[0],
        "fp32": _time(run(model, x), args.runs),
        "fp32_channels_last": _time(run(model_cl, x_cl), args.runs),
        "bf16_autocast_channels_last": _time(run(model_cl, x_cl, bf16=True), args.runs),
        "tiled_512_overlap64_fp32": _time(lambda: predict_probabilities(model_cl, image, 512, 64), args.runs),
        "tiled_512_overlap64_bf16": _time(lambda: predict_probabilities(model_cl, image, 512, 64, bf16=True),
                                          args.runs),
        "tiled_512_overlap64_fp32_tta2": _time(lambda: predict_probabilities(model_cl, image, 512, 64, views=2),
                                               args.runs),
        "tiled_512_overlap64_fp32_tta2_small_mirror": _time(
            lambda: predict_probabilities(model_cl, image, 512, 64, views=Views(2, "small-mirror")), args.runs),
        "tiled_512_overlap64_bf16_tta2": _time(
            lambda: predict_probabilities(model_cl, image, 512, 64, views=2, bf16=True), args.runs),
        "tiled_512_overlap64_fp32_tta8": _time(lambda: predict_probabilities(model_cl, image, 512, 64, views=8),
                                               max(1, args.runs // 2)),
        "load_average_after": os.getloadavg()[0],
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
