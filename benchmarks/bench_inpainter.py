"""Inpainter inference speed on one 512x512 tile, on 2 CPU threads (median of several runs).

    python benchmarks/bench_inpainter.py                  # the shipped weights (inpainter-pconv)
    python benchmarks/bench_inpainter.py --threads 2 --repeats 7 --bf16

Times `pipeline.stages.inpaint.inpaint_tile` (one network pass, padding and conversion included) on a 512x512
RGB tile of a validation painting with a ~20% irregular hole, and the whole-composite call
`inpaint_image` at the default tiling. With --bf16 it also times bf16 autocast (accuracy not checked here).
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import models  # noqa: F401  (torchvision import fix)


def _tile() -> np.ndarray:
    from lab.inpainter_data import load_rgb
    from lab.paintings import paintings

    files = paintings("val")
    if not files:
        return np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    img = load_rgb(files[0])
    y, x = (img.shape[0] - 512) // 2, (img.shape[1] - 512) // 2
    return np.ascontiguousarray(img[y : y + 512, x : x + 512])


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--weights", default="inpainter-pconv")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lab.synthesis.masks import mask_in_bin
    from pipeline.stages.inpaint import InpaintConfig, inpaint_image, inpaint_tile, load_inpainter

    model = load_inpainter(args.weights)
    tile = _tile()
    hole = mask_in_bin("irregular", (512, 512), 0.15, 0.25, seed=0)
    cfg = InpaintConfig()
    result = {
        "device": "cpu",
        "threads": args.threads,
        "weights": args.weights,
        "arch": model.arch_args(),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "hole_ratio": round(float(hole.mean()), 3),
        "inpaint_tile_512_fp32_ms": round(_median_ms(lambda: inpaint_tile(tile, hole, model), args.repeats), 1),
        f"inpaint_image_512_tile{cfg.tile}_overlap{cfg.overlap}_ms": round(
            _median_ms(
                lambda: inpaint_image(tile, hole, model, tile=cfg.tile, overlap=cfg.overlap), args.repeats
            ),
            1,
        ),
    }
    if args.bf16:
        def run_bf16() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                inpaint_tile(tile, hole, model)

        result["inpaint_tile_512_bf16_ms"] = round(_median_ms(run_bf16, args.repeats), 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
