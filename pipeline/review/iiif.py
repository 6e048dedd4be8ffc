"""IIIF Image API 3 request arithmetic: parse region/size/rotation/quality.format, choose a pyramid level.

Pure functions on integers, no I/O, so every border case is testable on its own. A request the server
cannot answer raises `IIIFError` whose message is the reason sent back with the 400.
Spec: https://iiif.io/api/image/3.0/ (level 1 plus `regionByPct`, `sizeByPct`, `sizeByConfinedWh`,
`sizeByWh` and `sizeUpscaling`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

FORMATS = {"jpg": "image/jpeg", "png": "image/png"}
QUALITIES = ("default", "color")
MAX_SIDE = 4096  # largest output side served: bounds the memory of one request
TILE = 512  # tile side announced in info.json (OpenSeadragon asks for these)
EXTRA_FEATURES = ["regionByPct", "regionSquare", "sizeByPct", "sizeByConfinedWh", "sizeByWh", "sizeUpscaling"]

_NUMBER = r"\d+(?:\.\d+)?"


class IIIFError(ValueError):
    """A request that cannot be served; the message says why (answered with HTTP 400)."""


@dataclass(frozen=True)
class Request:
    """A parsed image request in level-0 pixels: region (x, y, w, h) -> output (width, height)."""

    x: int
    y: int
    w: int
    h: int
    width: int
    height: int
    quality: str
    format: str


def parse_region(region: str, width: int, height: int) -> tuple[int, int, int, int]:
    """`full`, `square`, `x,y,w,h` or `pct:x,y,w,h` -> (x, y, w, h) clipped to the image."""
    if region == "full":
        return 0, 0, width, height
    if region == "square":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    pct = region.startswith("pct:")
    body = region[4:] if pct else region
    pattern = rf"^({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})$" if pct else r"^(\d+),(\d+),(\d+),(\d+)$"
    match = re.match(pattern, body)
    if not match:
        raise IIIFError(f"region '{region}' is not full, square, x,y,w,h or pct:x,y,w,h")
    if pct:
        px, py, pw, ph = (float(v) for v in match.groups())
        x, y = round(px * width / 100), round(py * height / 100)
        w, h = round(pw * width / 100), round(ph * height / 100)
    else:
        x, y, w, h = (int(v) for v in match.groups())
    if w <= 0 or h <= 0:
        raise IIIFError(f"region '{region}' has zero width or height")
    if x >= width or y >= height:
        raise IIIFError(f"region '{region}' lies outside the {width}x{height} image")
    return x, y, min(w, width - x), min(h, height - y)


def parse_size(size: str, rw: int, rh: int) -> tuple[int, int]:
    """`max`, `w,`, `,h`, `pct:n`, `w,h`, `!w,h` (each with an optional `^` to allow upscaling) -> (w, h)."""
    upscale = size.startswith("^")
    body = size[1:] if upscale else size
    if body == "max":
        scale = min(1.0, MAX_SIDE / max(rw, rh)) if not upscale else MAX_SIDE / max(rw, rh)
        return max(1, math.floor(rw * scale)), max(1, math.floor(rh * scale))
    if body.startswith("pct:"):
        if not re.match(rf"^{_NUMBER}$", body[4:]):
            raise IIIFError(f"size '{size}' is not pct:n")
        n = float(body[4:])
        if n <= 0:
            raise IIIFError(f"size '{size}' must be above 0 %")
        out = (max(1, round(rw * n / 100)), max(1, round(rh * n / 100)))
    elif (match := re.match(r"^(!?)(\d*),(\d*)$", body)) is None:
        raise IIIFError(f"size '{size}' is not max, w,, ,h, pct:n, w,h or !w,h")
    else:
        confined, sw, sh = match.group(1) == "!", match.group(2), match.group(3)
        if confined or (sw and sh):
            if not (sw and sh):
                raise IIIFError(f"size '{size}': !w,h needs both w and h")
            w, h = int(sw), int(sh)
            if confined:
                scale = min(w / rw, h / rh)
                w, h = max(1, round(rw * scale)), max(1, round(rh * scale))
            out = (w, h)
        elif sw:
            w = int(sw)
            out = (w, max(1, round(rh * w / rw)))
        elif sh:
            h = int(sh)
            out = (max(1, round(rw * h / rh)), h)
        else:
            raise IIIFError(f"size '{size}' gives neither width nor height")
    if out[0] <= 0 or out[1] <= 0:
        raise IIIFError(f"size '{size}' has zero width or height")
    if not upscale and (out[0] > rw or out[1] > rh):
        raise IIIFError(f"size '{size}' ({out[0]}x{out[1]}) is larger than the region ({rw}x{rh}); "
                        "prefix it with ^ to upscale")
    if max(out) > MAX_SIDE:
        raise IIIFError(f"size '{size}' ({out[0]}x{out[1]}) is over the {MAX_SIDE} px limit")
    return out


def parse_request(region: str, size: str, rotation: str, quality_format: str, width: int, height: int) -> Request:
    """The whole image request, checked; IIIFError says what is wrong."""
    if rotation != "0":
        raise IIIFError(f"rotation '{rotation}' is not supported (only 0)")
    quality, _, fmt = quality_format.rpartition(".")
    if fmt not in FORMATS:
        raise IIIFError(f"format '{fmt}' is not supported (jpg or png)")
    if quality not in QUALITIES:
        raise IIIFError(f"quality '{quality}' is not supported (default or color)")
    x, y, w, h = parse_region(region, width, height)
    out_w, out_h = parse_size(size, w, h)
    return Request(x, y, w, h, out_w, out_h, quality, fmt)


def choose_level(scales: list[int], request: Request) -> int:
    """Index of the coarsest level whose downsampling still gives at least the requested resolution.

    `scales` are the levels' factors (1, 2, 4, ...). A level fits when the region, read on it, has at least
    the requested pixels (ceil(w / factor) >= width: the levels' sides are rounded up); the coarsest fitting
    level is read, so a zoomed-out view never touches level 0.
    """
    fitting = [index for index, scale in enumerate(scales)
               if -(-request.w // scale) >= request.width and -(-request.h // scale) >= request.height]
    return max(fitting, key=lambda index: scales[index]) if fitting else 0


def level_window(request: Request, scale: int, level_w: int, level_h: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) on a level of factor `scale` covering the request's region (outward rounding)."""
    x0, y0 = request.x // scale, request.y // scale
    x1 = min(level_w, -(-(request.x + request.w) // scale))
    y1 = min(level_h, -(-(request.y + request.h) // scale))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def info_json(base_id: str, width: int, height: int, scales: list[int], png_first: bool) -> dict:
    """The info.json of an image of `width` x `height` with pyramid factors `scales`."""
    return {
        "@context": "http://iiif.io/api/image/3/context.json",
        "id": base_id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level1",
        "width": width,
        "height": height,
        "maxWidth": MAX_SIDE,
        "maxHeight": MAX_SIDE,
        "sizes": [{"width": -(-width // s), "height": -(-height // s)} for s in reversed(scales)
                  if max(-(-width // s), -(-height // s)) <= MAX_SIDE],
        "tiles": [{"width": TILE, "height": TILE, "scaleFactors": list(scales)}],
        "preferredFormats": ["png"] if png_first else ["jpg"],
        "extraFormats": ["png"],
        "extraQualities": ["color"],
        "extraFeatures": EXTRA_FEATURES,
    }
