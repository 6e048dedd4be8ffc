"""Static IIIF Image API 3 level-0 tiles of a store's pyramid, for publishing or for opening offline.

    <out>/iiif/<name>/info.json                               profile level0, tiles at the pyramid's factors
    <out>/iiif/<name>/<x,y,w,h|full>/<w,h|max>/0/default.jpg  one file per tile (png for the damage overlay)

The file names are exactly the URLs OpenSeadragon asks a level-0 service for, so the folder can be put on
any web server (or opened from file:// by the export's before-after page, which inlines the info). Each tile
is one block of one pyramid level as stored (the levels are aligned to the tiles: no resampling), so memory
is a few tiles (read and encoded in threads) and every level is written from its own pyramid level.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.io.ordered import run_in_order

OVERLAY_RGBA = {1: (230, 40, 40, 255), 2: (40, 210, 230, 255)}


def to_rgb8(block: np.ndarray) -> np.ndarray:
    """(c, y, x) uint8/uint16 -> (y, x, 3) uint8 for display (16 bit: v >> 8; alpha dropped, grey replicated)."""
    image = np.moveaxis(block, 0, -1)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    image = image[:, :, :1] if image.shape[2] in (1, 2) else image[:, :, :3]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def static_tiles(width: int, height: int, scales: list[int], tile: int) -> Iterator[tuple[int, str, str, tuple]]:
    """(level index, region, size, (y0, y1, x0, x1) on that level) of every tile a level-0 viewer asks for."""
    for index, s in enumerate(scales):
        level_w, level_h = -(-width // s), -(-height // s)
        if level_w < tile and level_h < tile:  # one tile: the whole image at this size
            size = "max" if s == 1 else f"{level_w},{level_h}"
            yield index, "full", size, (0, level_h, 0, level_w)
            continue
        for ty in range(-(-level_h // tile)):
            for tx in range(-(-level_w // tile)):
                x, y = tx * tile * s, ty * tile * s
                w, h = min(tile * s, width - x), min(tile * s, height - y)
                region = "full" if (x, y, w, h) == (0, 0, width, height) else f"{x},{y},{w},{h}"
                sw, sh = min(tile, level_w - tx * tile), min(tile, level_h - ty * tile)
                size = "max" if (sw, sh) == (width, height) else f"{sw},{sh}"
                yield index, region, size, (ty * tile, ty * tile + sh, tx * tile, tx * tile + sw)


def write_static_iiif(group: Any, out_dir: Path, name: str, tile: int = 512, base_url: str | None = None,
                      overlay: bool = False) -> dict[str, Any]:
    """Write `<out_dir>/iiif/<name>/` from the pyramid `group` (labels as an RGBA overlay when `overlay`);
    returns its info.json (id = `<base_url>/iiif/<name>`, or the relative `iiif/<name>`)."""
    paths = sorted(group.array_keys(), key=int)
    arrays = [group[p] for p in paths]
    scales = [2 ** int(p) for p in paths]
    _, height, width = arrays[0].shape
    root = out_dir / "iiif" / name
    fmt = "png" if overlay else "jpg"

    def write(placed: tuple[int, str, str, tuple[int, int, int, int]]) -> None:
        index, region, size, (y0, y1, x0, x1) = placed
        block = np.asarray(arrays[index][:, y0:y1, x0:x1])
        if overlay:
            rgba = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
            for value, colour in OVERLAY_RGBA.items():
                rgba[block[0] == value] = colour
            image = Image.fromarray(rgba, "RGBA")
        else:
            image = Image.fromarray(to_rgb8(block), "RGB")
        target = root / region / size / "0" / f"default.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, "PNG" if overlay else "JPEG", **({} if overlay else {"quality": 90}))

    run_in_order(write, static_tiles(width, height, scales, tile))  # tiles read and encoded in threads
    info = {
        "@context": "http://iiif.io/api/image/3/context.json",
        "id": f"{base_url.rstrip('/')}/iiif/{name}" if base_url else f"iiif/{name}",
        "type": "ImageService3", "protocol": "http://iiif.io/api/image", "profile": "level0",
        "width": int(width), "height": int(height),
        "tiles": [{"width": tile, "height": tile, "scaleFactors": scales}],
        "preferredFormats": [fmt],
    }
    (root / "info.json").write_text(json.dumps(info, indent=1))
    return info


OSD_FILES = ("openseadragon.min.js", "openseadragon-LICENSE.txt")
OSD_DIR = Path(__file__).resolve().parent.parent / "review" / "static"  # vendored once, for both pages

_VIEWER = """<div class="dz"><div id="dz-before"></div><div id="dz-after"></div></div>
<p><label><input id="dz-swipe" type="checkbox"> swipe</label> <input id="dz-pos" type="range" value="50">
<label><input id="dz-overlay" type="checkbox" checked> damage map</label>
(<span style="color:rgb(230,40,40)">red = craquelure</span>, <span style="color:rgb(40,210,230)">cyan = paint
loss</span>) opacity <input id="dz-opacity" type="range" value="70"></p>
<script src="openseadragon.min.js"></script>
<script>
const INFO = __INFO__;
const opts = {showNavigationControl: false, drawer: "canvas", crossOriginPolicy: false};
const A = OpenSeadragon({id: "dz-before", ...opts}), B = OpenSeadragon({id: "dz-after", ...opts});
const items = {};
function add(v, key, opacity) { v.addTiledImage({tileSource: INFO[key], opacity, preload: true,
  success: (e) => { items[key + (v === A ? "A" : "B")] = e.item; style(); }}); }
add(A, "scan", 1); add(A, "restored", 0); add(A, "damage", 0.7); add(B, "restored", 1);
let lock = false;
for (const [s, d] of [[A, B], [B, A]]) s.addHandler("viewport-change", () => { if (lock) return; lock = true;
  d.viewport.zoomTo(s.viewport.getZoom(), null, true); d.viewport.panTo(s.viewport.getCenter(), true); lock = false; });
function style() {
  const $ = (id) => document.getElementById(id), swipe = $("dz-swipe").checked;
  const w = INFO.scan.width, h = INFO.scan.height, x = Math.round(w * $("dz-pos").value / 100);
  $("dz-after").style.display = swipe ? "none" : "";
  const r = items.restoredA, d = items.damageA;
  if (r) { r.setOpacity(swipe ? 1 : 0); r.setClip(new OpenSeadragon.Rect(x, 0, w - x, h)); }
  if (d) { d.setOpacity($("dz-overlay").checked ? $("dz-opacity").value / 100 : 0);
           d.setClip(swipe ? new OpenSeadragon.Rect(0, 0, x, h) : null); }
}
for (const id of ["dz-swipe", "dz-pos", "dz-overlay", "dz-opacity"]) {
  document.getElementById(id).addEventListener("input", style);
}
</script>"""


def deep_zoom_section(infos: dict[str, dict[str, Any]], out_dir: Path) -> str:
    """The before/after deep-zoom block of the export page (works from file://: the infos are inlined and
    the tiles are plain image files); copies OpenSeadragon and its licence beside the page."""
    import shutil

    for name in OSD_FILES:
        shutil.copyfile(OSD_DIR / name, out_dir / name)
    return _VIEWER.replace("__INFO__", json.dumps(infos))
