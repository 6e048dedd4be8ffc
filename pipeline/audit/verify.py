"""`retouch verify STORE`: recompute the digest of every chunk of every array and compare with its sidecar,
and each array's combined digest with the completion marker and the PROV document that generated it.

Bit rot and tampering show up as a chunk whose pixels no longer hash to the recorded digest, or as a chunk
that no longer decodes (a flipped byte in a zstd frame usually makes it unreadable); both are reported by
array and chunk index.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zarr

from pipeline.io.digests import ALGORITHM, parse_key, read_sidecar
from pipeline.io.store import block_digest, chunk_grid, combine_digests, group_info, join, open_root
from pipeline.provenance import read_document

GROUPS = ("scan", "damage", "mask_edited", "restored")


@dataclass(frozen=True)
class Problem:
    """One thing wrong: `chunk` is (row, column) in the array's chunk grid, None for the array as a whole."""

    array: str
    chunk: tuple[int, int] | None
    kind: str  # 'mismatch', 'unreadable', 'no digest', 'no sidecar', 'sidecar', 'provenance'
    detail: str = ""

    def line(self) -> str:
        where = f"{self.array} chunk {self.chunk[0]},{self.chunk[1]}" if self.chunk else self.array
        return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class VerifyReport:
    store: str
    arrays: int = 0
    chunks: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _arrays(root: zarr.Group) -> list[str]:
    """Paths of the arrays of the store's output groups (scan, damage, mask_edited, restored)."""
    paths = []
    for name in GROUPS:
        if name in root:
            paths += [f"{name}/{path}" for path, member in root[name].members(max_depth=None)
                      if isinstance(member, zarr.Array)]
    return sorted(paths)


def _marker_digests(store: str) -> dict[str, tuple[str, str | None]]:
    """array path -> (digest recorded in the group's completion marker, its PROV document)."""
    out: dict[str, tuple[str, str | None]] = {}
    for name in GROUPS:
        info = group_info(store, name) or {}
        prov = info.get("prov") or {}
        for path, ref in (prov.get("entities") or {}).items():
            if "digest" in ref.get("attrs", {}):
                out[path] = (ref["attrs"]["digest"], prov.get("document"))
    return out


def _check_chunk(array: Any, region: tuple[int, int, int, int], expected: str | None) -> str | None:
    """None when the chunk hashes to `expected`, else the kind of problem."""
    y0, y1, x0, x1 = region
    try:
        block = array[:, y0:y1, x0:x1]
    except Exception as exc:  # noqa: BLE001 - any decode failure means the chunk is unreadable
        return f"unreadable: {type(exc).__name__}: {str(exc)[:80]}"
    if expected is None:
        return "no digest"
    return None if block_digest(block) == expected else "mismatch"


def verify_store(store: str, workers: int = 0) -> VerifyReport:
    """Recompute every chunk digest of `store`; the report lists each mismatching or unreadable chunk."""
    root = open_root(store)
    report = VerifyReport(store)
    recorded = _marker_digests(store)
    documents: dict[str, Any] = {}
    jobs = []
    for path in _arrays(root):
        array = root[path]
        report.arrays += 1
        sidecar = read_sidecar(store, path)
        if sidecar is None:
            report.problems.append(Problem(path, None, "no sidecar", "no retouch-digests.json beside the array"))
            continue
        if sidecar.get("algorithm") != ALGORITHM:
            report.problems.append(Problem(path, None, "sidecar", f"unknown algorithm {sidecar.get('algorithm')!r}"))
            continue
        chunks = sidecar.get("chunks", {})
        if combine_digests(chunks) != sidecar.get("combined"):
            report.problems.append(Problem(path, None, "sidecar", "its chunk digests do not give its combined one"))
        if path in recorded:
            digest, doc = recorded[path]
            if digest != sidecar.get("combined"):
                report.problems.append(Problem(path, None, "provenance", "sidecar differs from the completion marker"))
            if doc and not _in_document(store, doc, path, digest, documents):
                report.problems.append(Problem(path, None, "provenance", f"digest not found in {doc}"))
        side = array.chunks[1]
        for region in chunk_grid(array.shape, side):
            key = f"{region[0] // side}-{region[2] // side}"
            jobs.append((path, key, array, region, chunks.get(key)))
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda job: _check_chunk(job[2], job[3], job[4]), jobs))
    for (path, key, *_), problem in zip(jobs, results, strict=True):
        if problem is not None:
            kind, _, detail = problem.partition(": ")
            report.problems.append(Problem(path, parse_key(key), kind, detail))
    report.chunks = len(jobs)
    return report


def _in_document(store: str, document: str, path: str, digest: str, cache: dict[str, Any]) -> bool:
    """Whether the PROV document `document` (relative to the store) records `path` with `digest`."""
    if document not in cache:
        try:
            cache[document] = read_document(join(store, document))
        except (OSError, ValueError):
            cache[document] = None
    doc = cache[document]
    if doc is None:
        return False
    for record in doc.get_records():
        attrs = {str(k): v for k, v in record.attributes}
        if attrs.get("retouch:path") == path and attrs.get("retouch:digest") == digest:
            return True
    return False
