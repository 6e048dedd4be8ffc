"""The detection as it was before adapt fitted new weights, kept so that a conservator sees what adapting changed.

    damage_before_adapt/0..N   (1, y, x) uint8: 0 none, 1 craquelure, 2 paint loss: a copy of the levels of
                               `scan/labels/damage` as they were when `retouch adapt` last fitted weights

Adapting re-runs detection with the adapted weights, which replaces the detected map; the review page compares the
two (`retouch review`, map "changed by adapt": what adapting added, per class, and what it removed), so that the
satin highlight the adapted detector now takes for a loss is seen and marked clean before the next round. The copy
is made by the adapt stage (chunk files copied as they are), staged and swapped in like any group; a store with no
complete detection keeps no copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.io.staging import partial_name, remove, swap_in
from pipeline.io.store import DAMAGE_LABELS, MARKER_KEY, group_info, local_path, mark_complete
from pipeline.stages.detect import DAMAGE_GROUP, labels_current

BEFORE_ADAPT = "damage_before_adapt"
UNLEARNED = 0.5  # under this share of a class's strokes flagged after adapting, `retouch adapt` warns (`unlearned`)


def keep_detection_before(store: str) -> dict[str, Any] | None:
    """Copy the store's detected labels (every level) to BEFORE_ADAPT, replacing the last copy; its marker names
    the detection copied (its stage key and level-0 digest), which is also returned. With no complete detection
    the last copy is removed and None returned. Local stores only (as adapt)."""
    remove(store, partial_name(BEFORE_ADAPT))  # leftovers of a killed copy
    damage = group_info(store, DAMAGE_GROUP)
    if not labels_current(store, damage):
        remove(store, BEFORE_ADAPT)
        return None
    assert damage is not None
    source, target = (Path(local_path(store), name) for name in (DAMAGE_LABELS, partial_name(BEFORE_ADAPT)))
    # the group's own zarr.json holds the detect stage's marker: copied last, without it, so no partial copy
    # ever looks complete
    shutil.copytree(source, target, ignore=lambda folder, names: ["zarr.json"] if Path(folder) == source else [])
    meta = json.loads((source / "zarr.json").read_text())
    meta.get("attributes", {}).pop(MARKER_KEY, None)
    (target / "zarr.json").write_text(json.dumps(meta))
    info = {"stage": "adapt", "copy_of": DAMAGE_LABELS, "detect_key": damage.get("key"),
            "labels_digest": damage["digests"]["labels/0"],
            "area_percent": damage.get("summary", {}).get("area_percent", {})}
    mark_complete(zarr.open_group(store, mode="r+", path=partial_name(BEFORE_ADAPT)), info)
    swap_in(store, BEFORE_ADAPT)
    return {**info, "complete": True}


def flagged_shares(store: str, now: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Per class, the share of the scan flagged (%) by the detection before adapt's last fit ("before", None when
    no copy was kept) and by `now` (a detect summary's `area_percent`)."""
    before = (group_info(store, BEFORE_ADAPT) or {}).get("area_percent") or {}
    return {name: {"before": before.get(name), "now": share} for name, share in now.items()}


def strokes_flagged(store: str, scribbles: str) -> dict[str, dict[str, float]]:
    """Per damage class with strokes, its stroke pixels ("pixels") and the share of them the store's detected
    map now labels as that class ("flagged"): a conservator's loss strokes left unflagged after adapting are
    losses it did not learn (with the support, where the base saw nothing). Reads only the chunks under the
    strokes."""
    from pipeline.io.scribbles import CLASS_NAMES, read_scribbles

    labels = zarr.open_group(local_path(store), mode="r")[f"{DAMAGE_LABELS}/0"]
    marks = read_scribbles(scribbles, tuple(labels.shape[-2:]))
    out = {}
    for value in marks.damage_classes:
        ys, xs = marks.points[value].T
        found = labels.vindex[(np.zeros_like(ys), ys, xs)] == value  # level 0 is (1, y, x)
        out[CLASS_NAMES[value]] = {"pixels": int(marks.counts[CLASS_NAMES[value]]), "flagged": float(found.mean())}
    return out


def describe_strokes(flagged: dict[str, dict[str, float]]) -> str:
    """`craquelure 15 % of 41 px, paint_loss 98 % of 183 px flagged now`."""
    return ", ".join(f"{name} {100 * s['flagged']:.0f} % of {s['pixels']} px" for name, s in flagged.items()) \
        + " flagged now"


def unlearned(flagged: dict[str, dict[str, float]], support_loss: float, reach: int, add: float) -> list[str]:
    """What to tell a conservator whose strokes of a class are mostly (UNLEARNED) left unflagged after adapting,
    with why and what to do, one line per class; none when the strokes are flagged."""
    lines = []
    losses = flagged.get("paint_loss", {}).get("flagged", 1.0)
    if losses < UNLEARNED and support_loss:
        lines.append(f"{100 * (1 - losses):.0f} % of the paint-loss strokes are not flagged: where the base gives a "
                     f"loss no pixel of {support_loss}, the support drops what adapt adds (--support-loss 0 lets it "
                     "add there, and anywhere else it finds such paint)")
    cracks = flagged.get("craquelure", {}).get("flagged", 1.0)
    if cracks < UNLEARNED:
        lines.append(f"{100 * (1 - cracks):.0f} % of the craquelure strokes are not flagged: the craquelure head "
                     f"continues cracks the base found (within {reach} px, --reach) where it is {add} sure, and a few "
                     "strokes seldom teach it a crack the base misses whole; paint such cracks on the damage map with "
                     "the review page's brush to have them filled")
    return lines


def describe_shares(shares: dict[str, dict[str, float | None]]) -> str:
    """`craquelure 1.44 % -> 1.06 %, paint_loss 3.76 % -> 3.70 %` (a class without a share before: its share now)."""
    return ", ".join(f"{name} {s['before']:.2f} % -> {s['now']:.2f} %" if s["before"] is not None
                     else f"{name} {s['now']:.2f} %" for name, s in shares.items())
