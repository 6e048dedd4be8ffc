"""`retouch lineage STORE --region X,Y,W,H`: which chunks, weights, parameters and runs produced a region.

A restored chunk that was inpainted was computed from the scan and mask chunks within the inpaint halo of
it; a copied chunk from its own scan chunk. A detected mask chunk was computed from the scan chunks within
the detect halo. The answer lists each array's chunks (grid index, pixel box, digest from the sidecar), the
runs (PROV activity, document, times, parameters), the weights by sha256 and the source file.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import InputError
from pipeline.io.digests import ALGORITHM, read_sidecar
from pipeline.io.store import DAMAGE_LABELS, group_info, open_complete, open_damage_labels, open_root
from pipeline.provenance import STORE_ATTR

IMAGES = ("restored", "damage", "scan")
Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def parse_region(text: str) -> tuple[int, int, int, int]:
    """'X,Y,W,H' (level-0 pixels) -> (x, y, w, h)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(text, "region must be X,Y,W,H in pixels, e.g. 1000,2000,512,512") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise InputError(text, "region needs X, Y >= 0 and W, H > 0") from None
    return x, y, w, h


def _chunks(box: Box, chunk: int, height: int, width: int) -> list[tuple[int, int]]:
    y0, y1, x0, x1 = max(0, box[0]), min(height, box[1]), max(0, box[2]), min(width, box[3])
    return [(cy, cx) for cy in range(y0 // chunk, (y1 - 1) // chunk + 1)
            for cx in range(x0 // chunk, (x1 - 1) // chunk + 1)]


def _grow(keys: set[tuple[int, int]], chunk: int, halo: int, height: int, width: int) -> set[tuple[int, int]]:
    """The chunks that the halo of each chunk in `keys` reaches into."""
    out: set[tuple[int, int]] = set()
    for cy, cx in keys:
        out.update(_chunks((cy * chunk - halo, (cy + 1) * chunk + halo, cx * chunk - halo, (cx + 1) * chunk + halo),
                           chunk, height, width))
    return out


def _describe(store: str, array: str, keys: set[tuple[int, int]], chunk: int, height: int,
              width: int) -> list[dict[str, Any]]:
    digests = (read_sidecar(store, array) or {}).get("chunks", {})
    return [{"chunk": [cy, cx], "box": {"y0": cy * chunk, "y1": min(height, (cy + 1) * chunk),
                                        "x0": cx * chunk, "x1": min(width, (cx + 1) * chunk)},
             "sha256": digests.get(f"{cy}-{cx}")} for cy, cx in sorted(keys)]


def _urn(activity: str | None) -> str | None:
    """'run:<uuid>' (as the PROV documents write it) -> 'urn:uuid:<uuid>'."""
    return f"urn:uuid:{activity[4:]}" if activity and activity.startswith("run:") else activity


def _run(stage: str, info: dict[str, Any]) -> dict[str, Any]:
    prov = info.get("prov") or {}
    run = {"stage": stage, "activity": _urn(prov.get("activity")),
           "document": prov.get("document") or info.get("provenance"), "started": prov.get("started"),
           "ended": prov.get("ended"), "parameters": info.get("params") or {}}
    if info.get("weights_sha256"):
        run["weights"] = {"name": info.get("weights"), "sha256": info["weights_sha256"]}
    return run


def lineage(store: str, region: tuple[int, int, int, int], image: str = "restored") -> dict[str, Any]:
    """What produced `region` (x, y, w, h in level-0 pixels) of `image` (restored, damage or scan)."""
    if image not in IMAGES:
        raise InputError(image, f"image must be one of {', '.join(IMAGES)}")
    group = open_damage_labels(store) if image == "damage" else open_complete(store, image)
    level0 = group["0"]
    _, height, width = level0.shape
    chunk = level0.chunks[1]
    x, y, w, h = region
    if x + w > width or y + h > height:
        raise InputError(f"{x},{y},{w},{h}", f"region leaves the image ({width} px wide, {height} px high)")
    keys = set(_chunks((y, y + h, x, x + w), chunk, height, width))
    steps: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    scan_keys: set[tuple[int, int]] = set()
    detect_keys: set[tuple[int, int]] = set()
    if image == "restored":
        info = group_info(store, "restored") or {}
        halo = int((info.get("params") or {}).get("halo", 0))
        inpainted = {tuple(int(v) for v in k.split("-")) for k in info.get("inpainted_chunks", [])}
        filled, copied = keys & inpainted, keys - inpainted
        mask_array = "mask_edited/0" if info.get("mask") == "mask_edited" else f"{DAMAGE_LABELS}/0"
        mask_keys = _grow(filled, chunk, halo, height, width) | copied
        scan_keys |= mask_keys
        runs.append(_run("inpaint", info))
        steps.append({"array": "restored/0", "run": runs[-1]["activity"],
                      "chunks": _describe(store, "restored/0", keys, chunk, height, width),
                      "inpainted": [list(k) for k in sorted(filled)], "copied": [list(k) for k in sorted(copied)],
                      "halo": halo})
        if mask_array == f"{DAMAGE_LABELS}/0":
            detect_keys = mask_keys  # described with the detect run below
        else:
            mask_info = group_info(store, "mask_edited") or {}
            steps.append({"array": mask_array, "kind": "edited", "source": mask_info.get("source"),
                          "run": _urn((mask_info.get("prov") or {}).get("activity")),
                          "chunks": _describe(store, mask_array, mask_keys, chunk, height, width)})
    else:
        detect_keys = keys if image == "damage" else set()
        scan_keys |= keys if image == "scan" else set()
    if detect_keys:
        info = group_info(store, "damage") or {}
        halo = int((info.get("params") or {}).get("halo", 0))
        runs.append(_run("detect", info))
        steps.append({"array": f"{DAMAGE_LABELS}/0", "kind": "detected", "run": runs[-1]["activity"], "halo": halo,
                      "chunks": _describe(store, f"{DAMAGE_LABELS}/0", detect_keys, chunk, height, width)})
        scan_keys |= _grow(detect_keys, chunk, halo, height, width)
    scan_info = group_info(store, "scan") or {}
    runs.append(_run("ingest", scan_info))
    steps.append({"array": "scan/0", "run": runs[-1]["activity"],
                  "chunks": _describe(store, "scan/0", scan_keys, chunk, height, width)})
    return {
        "store": store,
        "store_uuid": (open_root(store).attrs.get(STORE_ATTR) or {}).get("uuid"),
        "image": image,
        "region": {"x": x, "y": y, "width": w, "height": h},
        "chunk_size": chunk,
        "digest_algorithm": ALGORITHM,
        "source": {"file": str(scan_info.get("source", "")).rsplit("/", 1)[-1],
                   "sha256": scan_info.get("source_sha256")},
        "steps": steps,
        "runs": runs,
        "weights": [r["weights"] for r in runs if "weights" in r],
    }


def readable(answer: dict[str, Any]) -> list[str]:
    """A few lines saying what `lineage` found."""
    r = answer["region"]
    lines = [f"{answer['image']} region x={r['x']} y={r['y']} {r['width']}x{r['height']} px "
             f"(chunks of {answer['chunk_size']} px) was produced from:"]
    for step in answer["steps"]:
        keys = " ".join(f"{c['chunk'][0]},{c['chunk'][1]}" for c in step["chunks"])
        extra = f", {len(step['inpainted'])} inpainted, {len(step['copied'])} copied" if "inpainted" in step else ""
        kind = f" ({step['kind']})" if "kind" in step else ""
        lines.append(f"  {step['array']}{kind}: {len(step['chunks'])} chunks [{keys}]{extra}")
    for run in answer["runs"]:
        used = run.get("weights")
        weights = f", weights {used['name']} sha256 {used['sha256'][:16]}…" if used else ""
        lines.append(f"  run {run['stage']}: {run['activity']} ({run['started']} .. {run['ended']}){weights}")
    src = answer["source"]
    lines.append(f"  source file {src['file']} sha256 {str(src['sha256'])[:16]}…")
    return lines
