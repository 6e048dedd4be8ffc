"""Which scans a catalog sweep must restore: those whose source file changed (by sha256) since the last run.

The store itself is the record of the last run: its `scan/` completion marker holds the sha256 of the file
it was ingested from. A scan is up to date when that digest equals the file's current digest and the run
got to the end (`restored/` complete and the export's `summary.json` written); otherwise it is restored
again, replacing the old scan (`needs_force`) when the file's bytes changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io.store import group_info
from pipeline.provenance import sha256_file


@dataclass(frozen=True)
class SweepItem:
    """One scan of a sweep: where its outputs go and what the store says about its last run."""

    id: str
    source: str
    store: str
    export_dir: str
    source_sha256: str
    last_sha256: str | None  # sha256 of the file the store's scan/ was ingested from (None: never ingested)
    finished: bool  # the last run wrote restored/ and the export summary

    @property
    def changed(self) -> bool:
        return self.last_sha256 != self.source_sha256 or not self.finished

    @property
    def needs_force(self) -> bool:
        """The store holds another version of the file: ingest must replace it."""
        return self.last_sha256 is not None and self.last_sha256 != self.source_sha256

    @property
    def reason(self) -> str:
        if self.last_sha256 is None:
            return "new"
        if self.needs_force:
            return "source changed"
        return "unfinished" if not self.finished else "unchanged"


def output_paths(out_dir: Path, scan_id: str) -> tuple[str, str]:
    """The store and export folder of a scan, as `retouch run` names them: `<id>.zarr`, `<id>-export`."""
    return str(out_dir / f"{scan_id}.zarr"), str(out_dir / f"{scan_id}-export")


def plan_item(scan_id: str, source: str, out_dir: Path) -> SweepItem:
    """Digest `source` and compare it with what the scan's store was last made from."""
    path = Path(source)
    if not path.is_file():
        raise InputError(source, f"source of catalog entry {scan_id!r} not found (or not a local file)")
    store, export_dir = output_paths(out_dir, scan_id)
    scan = group_info(store, "scan")
    finished = group_info(store, "restored") is not None and (Path(export_dir) / "summary.json").is_file()
    return SweepItem(scan_id, source, store, export_dir, sha256_file(path),
                     scan.get("source_sha256") if scan else None, bool(scan) and finished)
