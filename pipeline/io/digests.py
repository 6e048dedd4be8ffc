"""Per-chunk digests kept beside each array: `<store>/<array>/retouch-digests.json`.

A chunk's digest is `block_digest` (pipeline.io.store): sha256 over the ASCII text of the decoded chunk's
shape as a Python tuple (e.g. `(3, 1024, 1024)`) and numpy's `dtype.str` (e.g. `|u1`, `<u2`), followed by
the chunk's samples in C order (c, y, x). Edge chunks are digested at their real (cropped) size. The
array's digest combines them: sha256 over the lines `<key>:<hex>\\n` sorted by key, where the key is the
chunk's grid index `<y>-<x>` (chunks span all channels). Digests are of decoded pixels, not of the chunk
files, so they hold across codecs and sharding; `retouch verify` recomputes them without Retouch's code
path being needed to understand them (the sidecar names the algorithm).
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.io.store import combine_digests, fs_and_path, join, write_json

SIDECAR = "retouch-digests.json"
ALGORITHM = "retouch-chunk-sha256/1"
ALGORITHM_TEXT = ("sha256(ascii(str(chunk.shape)) + ascii(chunk.dtype.str) + chunk.tobytes(order='C')) over each "
                  "decoded (c, y, x) chunk at its real size; combined = sha256 of the lines '<y>-<x>:<hex>\\n' "
                  "sorted by key")


def sidecar_url(store: str, array_path: str) -> str:
    return join(store, array_path, SIDECAR)


def write_sidecar(store: str, array_path: str, array: Any, chunks: dict[str, str],
                  generated_by: str | None = None, stored_at: str | None = None) -> str:
    """Write the per-chunk digests of `array` (a zarr array at `array_path`); returns the combined digest.

    `stored_at`: where the array is while being written (a recompute's `<group>.partial/...`, swapped into
    `array_path` when complete); the sidecar goes beside it there and moves with it."""
    combined = combine_digests(chunks)
    write_json(sidecar_url(store, stored_at or array_path), {
        "algorithm": ALGORITHM,
        "algorithm_text": ALGORITHM_TEXT,
        "array": array_path,
        "shape": list(array.shape),
        "chunk_shape": list(array.chunks),
        "dtype": str(array.dtype),
        "combined": combined,
        "generated_by": generated_by,
        "chunks": dict(sorted(chunks.items())),
    })
    return combined


def read_sidecar(store: str, array_path: str) -> dict[str, Any] | None:
    """The sidecar of `array_path`, or None where there is none."""
    fs, path = fs_and_path(sidecar_url(store, array_path))
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as fh:
        return json.load(fh)


def parse_key(key: str) -> tuple[int, int]:
    """'3-7' -> (3, 7): the chunk's row and column in the grid."""
    y, x = key.split("-")
    return int(y), int(x)
