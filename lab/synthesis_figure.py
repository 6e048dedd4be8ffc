"""The side-by-side figure of the damage generators: classic synthesis, realistic synthesis, real damage.

    python -m lab.synthesis_figure [--out docs/images/synthesis-old-new-real.png]

Rows are crops of VAL paintings (never trained on) damaged by each style with the same seed, beside real
damage: craquelure close-ups from `nga_craquelure_tiles` and Thai mural / fresco crops from `thai_murals`
(../shared/data). The PNG is palette-quantised to stay small enough to commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lab.paintings import paintings, shared_data_dir
from lab.synthesis.synthetic_damage import DamageConfig, synthesize_damage
from pipeline.io.image_io import read_image

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "synthesis-old-new-real.png"
TILE = 224
REAL = ("nga_craquelure_tiles/images/Dutch_1017.png", "nga_craquelure_tiles/images/Flemish_289.png",
        "thai_murals/case03-original.png", "thai_murals/inpaint-domain-original.png")
SEED = 21


def _real(path: Path) -> np.ndarray:
    image = read_image(path)[:, :, :3]
    return cv2.resize(image[:256, :256], (TILE, TILE), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (TILE, 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def make_figure(out: Path, rows: int = 4) -> Path:
    """Write the figure: one row per VAL painting crop (classic | realistic | a real crop)."""
    data = shared_data_dir()
    sources = paintings("val")
    missing = [p for p in REAL if not (data / p).is_file()]
    if len(sources) < rows or missing:
        raise FileNotFoundError(f"{data}: needs {rows} VAL paintings and {', '.join(missing) or 'the real crops'}")
    classic = DamageConfig(p_craquelure=1.0, p_paint_loss=1.0)
    realistic = DamageConfig(style="realistic", p_craquelure=1.0, p_paint_loss=1.0)
    lines = []
    for i in range(rows):
        image = read_image(sources[i])[:, :, :3]
        rng = np.random.default_rng(SEED + i)
        y = int(rng.integers(0, image.shape[0] - TILE))
        x = int(rng.integers(0, image.shape[1] - TILE))
        crop = np.ascontiguousarray(image[y:y + TILE, x:x + TILE])
        old, _ = synthesize_damage(crop, SEED + i, classic)
        new, _ = synthesize_damage(crop, SEED + i, realistic)
        real_path = Path(REAL[i])
        tiles = [_label(old, "old: classic synthesis"), _label(new, "new: realistic synthesis"),
                 _label(_real(data / real_path), f"real: {real_path.parts[0]} {real_path.stem}")]
        lines.append(np.hstack(tiles))
    figure = Image.fromarray(np.vstack(lines)).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    figure.save(tmp, optimize=True)
    tmp.replace(out)  # a failed run never leaves half a figure in place of the last good one
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        path = make_figure(args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"lab.synthesis_figure: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
