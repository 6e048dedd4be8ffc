"""Long straight "craquelure": components of the craquelure map whose centre line is a straight line.

Craquelure is a network of short, bent segments; a ship's rigging, a flag pole, a drawn contour or a board's joint is
one long straight line. A craquelure component (8-connected) is judged straight when its skeleton has at least
`min_length` px and the RMS distance of its skeleton pixels from their principal line (the square root of the
smaller eigenvalue of their covariance) is below `max_rms` px (docs/rules/2026-12-06n-straight-cracks.md).

Components are judged whole, also when they cross chunks: `straight_plan` labels each chunk's own pixels,
skeletonizes it with `SKELETON_HALO` px of its neighbours (so its skeleton is the whole map's wherever a component
is thinner than twice that), adds up each piece's skeleton moments, joins the pieces that touch across chunk
borders and decides per joined component; `clear_straight` then clears them chunk by chunk. `straight_components`
is the same on one image, read as a single chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

STRAIGHT_RMS = 1.0  # px: a skeleton closer than this to its principal line (RMS) is a straight line
DEFAULT_STRAIGHT = 60  # px of skeleton from which a straight craquelure component is dropped (rule 2026-12-06n)
SKELETON_HALO = 64  # px of the neighbouring chunks a chunk's skeleton is computed with
EIGHT = np.ones((3, 3), bool)

Region = tuple[int, int, int, int]  # y0, y1, x0, x1
# (y0, y1, x0, x1) -> the bool craquelure map of that window of the image (clipped to it by the caller)
Reader = Callable[[Region], np.ndarray]


@dataclass
class Plan:
    """Per chunk (its region), the local labels (`labelled`) of its pieces to clear; how many components that is."""

    drop: dict[Region, np.ndarray]
    dropped_components: int


def labelled(mask: np.ndarray) -> np.ndarray:
    """(H, W) int32: a chunk's craquelure pixels numbered by 8-connected piece (0 background), the local ids a
    `Plan` names."""
    from scipy import ndimage

    return ndimage.label(mask, structure=EIGHT)[0].astype(np.int32)


def local_pieces(read: Reader, region: Region, shape: tuple[int, int], halo: int) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's own craquelure pixels labelled 8-connected (int32, 0 background), and its skeleton there,
    computed over the chunk and `halo` px around it (within the image)."""
    from skimage.morphology import skeletonize

    y0, y1, x0, x1 = region
    wy0, wx0 = max(0, y0 - halo), max(0, x0 - halo)
    wide = read((wy0, min(shape[0], y1 + halo), wx0, min(shape[1], x1 + halo)))
    own = wide[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    skeleton = skeletonize(wide)[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] if own.any() else np.zeros_like(own)
    return labelled(own), skeleton


def piece_moments(pieces: np.ndarray, skeleton: np.ndarray, count: int, origin: tuple[int, int]) -> np.ndarray:
    """(count, 6) float64 per piece 1..count: skeleton px n, mean y, mean x (image coordinates), and the sums of
    squared and crossed deviations from the mean (yy, xx, yx)."""
    ys, xs = np.nonzero(skeleton)
    ids = pieces[ys, xs] - 1
    n = np.bincount(ids, minlength=count).astype(np.float64)
    safe = np.maximum(n, 1.0)
    my = np.bincount(ids, ys.astype(np.float64), count) / safe
    mx = np.bincount(ids, xs.astype(np.float64), count) / safe
    dy, dx = ys - my[ids], xs - mx[ids]
    return np.stack([n, my + origin[0], mx + origin[1], np.bincount(ids, dy * dy, count),
                     np.bincount(ids, dx * dx, count), np.bincount(ids, dy * dx, count)], axis=1)


def joined_moments(moments: np.ndarray, component: np.ndarray, count: int) -> np.ndarray:
    """Pieces' moments added up per component (the parallel form of the mean and the sums of deviations)."""
    n = np.bincount(component, moments[:, 0], count)
    safe = np.maximum(n, 1.0)
    my = np.bincount(component, moments[:, 0] * moments[:, 1], count) / safe
    mx = np.bincount(component, moments[:, 0] * moments[:, 2], count) / safe
    dy, dx = moments[:, 1] - my[component], moments[:, 2] - mx[component]
    w = moments[:, 0]
    return np.stack([n, my, mx, np.bincount(component, moments[:, 3] + w * dy * dy, count),
                     np.bincount(component, moments[:, 4] + w * dx * dx, count),
                     np.bincount(component, moments[:, 5] + w * dy * dx, count)], axis=1)


def straight(moments: np.ndarray, min_length: int, max_rms: float = STRAIGHT_RMS) -> np.ndarray:
    """Per row of moments: at least `min_length` skeleton px and a smaller covariance eigenvalue below max_rms**2
    (covariance with n - 1)."""
    n = moments[:, 0]
    d = np.maximum(n - 1.0, 1.0)
    a, b, c = moments[:, 3] / d, moments[:, 4] / d, moments[:, 5] / d
    smaller = (a + b) / 2.0 - np.sqrt(((a - b) / 2.0) ** 2 + c * c)
    return (n >= max(min_length, 2)) & (smaller < max_rms**2)


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 2) ids of the pieces that touch 8-connected across a border whose two sides are the rows of ids `a` and
    `b` (-1: no piece there): `a[i]` touches `b[i - 1]`, `b[i]` and `b[i + 1]`."""
    pairs = []
    for shift in (-1, 0, 1):
        i0, i1 = max(0, -shift), min(len(a), len(a) - shift)
        left, right = a[i0:i1], b[i0 + shift : i1 + shift]
        both = (left >= 0) & (right >= 0)
        pairs.append(np.stack([left[both], right[both]], axis=1))
    return np.concatenate(pairs)


def edge_rows(pieces: np.ndarray) -> dict[str, np.ndarray]:
    """A chunk's four edge rows ("top", "bottom", "left", "right") of `pieces`."""
    return {"top": pieces[0], "bottom": pieces[-1], "left": pieces[:, 0], "right": pieces[:, -1]}


def joined(regions: list[Region], edges: dict[Region, dict[str, np.ndarray]], total: int) -> tuple[int, np.ndarray]:
    """The components of `total` pieces numbered across chunks, joined where they touch 8-connected across chunk
    borders: `edges` gives per chunk its `edge_rows` of piece numbers (-1: no piece). Returns the count of
    components and each piece's component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    starts = {(r[0], r[2]): r for r in regions}  # a chunk by its top-left corner
    ends = {(r[0], r[3]): r for r in regions}  # and by its top-right corner
    pairs = [np.zeros((0, 2), np.int64)]
    for region in regions:
        y0, y1, x0, x1 = region
        own_edges = edges[region]
        for other, mine, theirs in ((starts.get((y0, x1)), own_edges["right"], "left"),
                                    (starts.get((y1, x0)), own_edges["bottom"], "top")):
            if other is not None:  # the chunk to the right, the chunk below
                pairs.append(_touching(mine, edges[other][theirs]))
        for other, mine, theirs in ((starts.get((y1, x1)), own_edges["bottom"][-1], 0),  # below-right, by its corner
                                    (ends.get((y1, x0)), own_edges["bottom"][0], -1)):  # below-left
            if other is not None and mine >= 0 and edges[other]["top"][theirs] >= 0:
                pairs.append(np.array([[mine, edges[other]["top"][theirs]]]))
    links = np.concatenate(pairs)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(total, total))
    count, component = connected_components(graph, directed=False)
    return int(count), component


def straight_plan(read: Reader, regions: list[Region], shape: tuple[int, int], min_length: int,
                  max_rms: float = STRAIGHT_RMS, halo: int = SKELETON_HALO) -> Plan:
    """Which pieces of which chunk belong to straight components of the whole craquelure map. Chunks are read one
    at a time; a piece that does not reach its chunk's edge is a whole component and decided there; what is kept
    for the others is their moments and, per chunk, its four edge rows of their ids (memory grows with the pieces
    along chunk edges, not with the area)."""
    drop: dict[Region, np.ndarray] = {}  # per chunk, the local ids of its straight pieces decided there
    border: dict[Region, np.ndarray] = {}  # per chunk, the local ids of its pieces on its edges, in id order
    first: dict[Region, int] = {}  # the number of a chunk's first edge piece across all chunks
    edges: dict[Region, dict[str, np.ndarray]] = {}  # their rows of ids, numbered across all chunks
    moments, total, whole_dropped = [], 0, 0
    for region in regions:
        pieces, skeleton = local_pieces(read, region, shape, halo)
        count = int(pieces.max()) if pieces.size else 0
        own = piece_moments(pieces, skeleton, count, (region[0], region[2]))
        rows = edge_rows(pieces)
        on_edge = np.zeros(count + 1, bool)
        for row in rows.values():
            on_edge[row] = True
        on_edge[0] = False
        inner = np.flatnonzero(~on_edge[1:]) + 1
        decided = inner[straight(own[inner - 1], min_length, max_rms)]
        whole_dropped += len(decided)
        drop[region] = decided
        border[region] = np.flatnonzero(on_edge)
        first[region] = total
        number = np.full(count + 1, -1, np.int64)
        number[border[region]] = total + np.arange(len(border[region]))
        edges[region] = {side: number[row] for side, row in rows.items()}
        moments.append(own[border[region] - 1])
        total += len(border[region])
    count, component = joined(regions, edges, total)
    flagged = straight(joined_moments(np.concatenate(moments) if moments else np.zeros((0, 6)), component, count),
                       min_length, max_rms)
    plan = {}
    for region in regions:
        ids = border[region]  # numbered first[region], first[region] + 1, ... across all chunks
        on_straight = ids[flagged[component[first[region] + np.arange(len(ids))]]]
        local = np.concatenate([drop[region], on_straight])
        if local.size:
            plan[region] = np.sort(local).astype(np.int32)
    return Plan(plan, whole_dropped + int(flagged.sum()))


def cleared(pieces: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of the pieces numbered in `drop`."""
    keep = np.zeros(int(pieces.max()) + 1, bool)
    keep[drop] = True
    keep[0] = False
    return keep[pieces]


def straight_components(mask: np.ndarray, min_length: int, max_rms: float = STRAIGHT_RMS) -> np.ndarray:
    """(H, W) bool: the pixels of `mask`'s straight components (the whole image judged as one chunk)."""
    mask = np.asarray(mask, bool)
    if min_length <= 0 or not mask.any():
        return np.zeros_like(mask)
    region = (0, mask.shape[0], 0, mask.shape[1])

    def read(window: Region) -> np.ndarray:
        return mask[window[0] : window[1], window[2] : window[3]]

    plan = straight_plan(read, [region], mask.shape, min_length, max_rms, halo=0)
    if region not in plan.drop:
        return np.zeros_like(mask)
    return cleared(labelled(mask), plan.drop[region])


def without_straight_cracks(prob: np.ndarray, threshold: float, min_length: int) -> np.ndarray:
    """(2, H, W) probabilities with the craquelure probability set to 0 on the straight components of the
    craquelure map (prob > threshold), so that thresholding gives the stage's labels; `prob` itself when
    min_length is 0."""
    if min_length <= 0:
        return prob
    gone = straight_components(prob[0] > threshold, min_length)
    if not gone.any():
        return prob
    out = prob.copy()
    out[0][gone] = 0.0
    return out


@dataclass
class Cleared:
    """What `clear_straight` wrote: per chunk id, the digest of its labels block and the craquelure px it
    cleared; and how many straight components there were."""

    digests: dict[str, str]
    dropped: dict[str, int]
    components: int


def straight_edit(plan: Plan, crack: int = 1) -> Callable[[Region, np.ndarray], np.ndarray | None]:
    """The `label_passes.Edit` that clears a chunk's straight pieces of class `crack` as `plan` names them."""

    def edit(region: Region, part: np.ndarray) -> np.ndarray | None:
        drop = plan.drop.get(region)
        return None if drop is None else cleared(labelled(part == crack), drop)

    return edit


def clear_straight(raw: Any, out: Any, chunk: int, min_length: int, crack: int = 1) -> Cleared:
    """Copy the (1, H, W) label map `raw` into `out` with the straight components of its class-`crack` map set to 0,
    judged over the whole map (`straight_plan`, reading `raw` chunk by chunk; `label_passes.rewrite_labels`). A
    function of `raw` alone, so that a run killed here and run again writes the same bytes."""
    from pipeline.io.store import chunk_grid
    from pipeline.stages.label_passes import rewrite_labels

    _, height, width = raw.shape

    def read(window: Region) -> np.ndarray:
        return np.asarray(raw[0, window[0] : window[1], window[2] : window[3]]) == crack

    plan = straight_plan(read, chunk_grid(raw.shape, chunk), (height, width), min_length)
    result = rewrite_labels(raw, out, chunk, [straight_edit(plan, crack)])
    return Cleared(result.digests, {cid: d.get(crack, 0) for cid, d in result.dropped.items()},
                   plan.dropped_components)
