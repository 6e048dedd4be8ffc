"""Re-runs started from the review page: inpainting on the corrected map, through the inpaint flow.

The button goes through `flows.inpaint.inpaint_flow` with `mask = <store>/mask_edited` — the same code as
`retouch inpaint STORE --mask STORE/mask_edited` — so the run is a Prefect flow run (recorded on the server
when one is configured) and writes its provenance like any other. One re-run at a time per server; its
progress is read from the stage's ledger (`<store>/_progress/inpaint/`), which the stage writes per chunk.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.io.store import chunk_grid, group_info, local_path, open_complete

EDITED = "mask_edited"


class ReviewJobs:
    """The re-runs of one store: start one, read its state."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._running: str | None = None

    def start_inpaint(self) -> dict[str, Any]:
        """Start inpainting on `mask_edited/` in a thread; the job's state (refused: status 'refused')."""
        with self._lock:
            if self._running is not None:
                return {**self._jobs[self._running], "status": "refused", "error": "a re-run is already going"}
            if group_info(self.store, EDITED) is None:
                return {"id": None, "status": "refused", "error": "no mask_edited/ yet: paint and save first"}
            job_id = uuid.uuid4().hex[:12]
            self._jobs[job_id] = {"id": job_id, "status": "running", "progress": "starting", "started": time.time()}
            self._running = job_id
        threading.Thread(target=self._run, args=(job_id,), daemon=True, name=f"review-inpaint-{job_id}").start()
        return self._jobs[job_id]

    def state(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job = dict(job)
        if job["status"] == "running":
            job["progress"] = self._progress()
        return job

    def _progress(self) -> str:
        ledger = Path(local_path(self.store)) / "_progress" / "inpaint"
        done = len(list(ledger.glob("*.done"))) if ledger.is_dir() else 0
        scan = open_complete(self.store, "scan")
        chunk = int(scan["0"].chunks[1])
        total = sum(len(chunk_grid(scan[p].shape, chunk)) for p in scan.array_keys())
        return f"{min(done, total)}/{total} chunks"

    def _run(self, job_id: str) -> None:
        from flows.inpaint import inpaint_flow
        from flows.params import InpaintParams

        try:
            result = inpaint_flow(self.store, InpaintParams(mask=str(Path(local_path(self.store)) / EDITED)))
            summary = result["summary"]
            update = {"status": "done", "summary": f"{summary['chunks_inpainted']} of {summary['chunks_total']} "
                                                   f"chunks inpainted, {summary['hole_pixels']} px filled"
                      + ("; unchanged, skipped" if result.get("skipped") else "")}
        except Exception as exc:  # shown on the page in one line; the flow run keeps the traceback
            update = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._jobs[job_id].update(update, ended=time.time())
            self._running = None


def review_jobs(store: str) -> ReviewJobs:
    return ReviewJobs(store)
