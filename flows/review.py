"""Re-runs started from the review page, through the flows: inpainting on the corrected map, adapt, its undo.

The inpaint button goes through `flows.inpaint.inpaint_flow` with `mask = <store>/mask_edited` — the same code as
`retouch inpaint STORE --mask STORE/mask_edited`; the adapt button through `flows.adapt.adapt_flow` on the store's
`scribbles/` — the same code as `retouch adapt STORE` with its defaults (fit, then detect with the adapted weights);
the undo button through `flows.adapt.adapt_undo_flow`, as `retouch adapt STORE --undo`.
So a re-run is a Prefect flow run (recorded on the server when one is configured) and writes its provenance like
any other. One re-run at a time per server; its progress is read from the ledger of the stage writing chunks
(`<store>/_progress/<stage>/`), which the stage writes per chunk.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.io.store import chunk_grid, group_info, local_path, open_complete
from pipeline.review.images import SCRIBBLE_GROUP as SCRIBBLES
from pipeline.stages.adapt_weights import WEIGHTS_GROUP as WEIGHTS
from pipeline.stages.inpaint_stage import EDITED_MASK_GROUP as EDITED


class ReviewJobs:
    """The re-runs of one store: start one, read its state."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._running: str | None = None

    def start_inpaint(self) -> dict[str, Any]:
        """Start inpainting on `mask_edited/` in a thread; the job's state (refused: status 'refused')."""
        return self._start("inpaint", EDITED, "no mask_edited/ yet: paint and save first", self._inpaint)

    def start_adapt(self) -> dict[str, Any]:
        """Start adapt on `scribbles/` (then detection with the adapted weights) in a thread; the job's state."""
        return self._start("adapt", SCRIBBLES, "no scribbles/ yet: paint strokes for adapt and save them first",
                           self._adapt)

    def start_undo(self) -> dict[str, Any]:
        """Start undoing adapt (its weights dropped, then detection with the default detector); the job's state."""
        return self._start("undo", WEIGHTS, "no adapted weights in this store: nothing to undo", self._undo)

    def state(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job = dict(job)
        if job["status"] == "running":
            job["progress"] = self._progress(job["stage"])
        return job

    def _start(self, stage: str, needs: str, missing: str, work: Callable[[], str]) -> dict[str, Any]:
        with self._lock:
            if self._running is not None:
                return {**self._jobs[self._running], "status": "refused", "error": "a re-run is already going"}
            if group_info(self.store, needs) is None:
                return {"id": None, "status": "refused", "error": missing}
            job_id = uuid.uuid4().hex[:12]
            self._jobs[job_id] = {"id": job_id, "stage": stage, "status": "running", "progress": "starting",
                                  "started": time.time()}
            self._running = job_id
        threading.Thread(target=self._run, args=(job_id, work), daemon=True,
                         name=f"review-{stage}-{job_id}").start()
        return self._jobs[job_id]

    def _progress(self, stage: str) -> str:
        """Chunks done of the stage writing them (adapt: its detection; before that, the fit)."""
        detects = stage in ("adapt", "undo")
        ledger = Path(local_path(self.store)) / "_progress" / ("detect" if detects else stage)
        if stage == "adapt" and not ledger.is_dir():
            return "fitting"
        done = len(list(ledger.glob("*.done"))) if ledger.is_dir() else 0
        scan = open_complete(self.store, "scan")
        chunk = int(scan["0"].chunks[1])
        total = sum(len(chunk_grid(scan[p].shape, chunk)) for p in scan.array_keys())
        return f"{'detecting: ' if detects else ''}{min(done, total)}/{total} chunks"

    def _run(self, job_id: str, work: Callable[[], str]) -> None:
        try:
            update = {"status": "done", "summary": work()}
        except Exception as exc:  # shown on the page in one line; the flow run keeps the traceback
            update = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._jobs[job_id].update(update, ended=time.time())
            self._running = None

    def _inpaint(self) -> str:
        from flows.inpaint import inpaint_flow
        from flows.params import InpaintParams

        result = inpaint_flow(self.store, InpaintParams(mask=str(Path(local_path(self.store)) / EDITED)))
        summary = result["summary"]
        return (f"{summary['chunks_inpainted']} of {summary['chunks_total']} chunks inpainted, "
                f"{summary['hole_pixels']} px filled" + ("; unchanged, skipped" if result.get("skipped") else ""))

    def _adapt(self) -> str:
        from flows.adapt import adapt_flow
        from flows.params import AdaptParams
        from pipeline.stages.adapt_before import describe_shares, describe_strokes, unlearned

        params = AdaptParams()
        results = adapt_flow(self.store, str(Path(local_path(self.store)) / SCRIBBLES), params)
        fitted = results["adapt"]
        warnings = unlearned(results["strokes"], params.support_loss, params.reach, params.add)
        return (f"adapted {', '.join(fitted['summary']['adapted_classes'])}"
                + ("; unchanged, skipped" if fitted.get("skipped") else "")
                + f"; flagged {describe_shares(results['flagged'])}; strokes: {describe_strokes(results['strokes'])}"
                + "".join(f"; warning: {line}" for line in warnings))

    def _undo(self) -> str:
        from flows.adapt import adapt_undo_flow

        results = adapt_undo_flow(self.store)
        flagged = ", ".join(f"{k} {v:.2f} %" for k, v in results["detect"]["summary"]["area_percent"].items())
        return f"adapted weights dropped; detected with the default detector: flagged {flagged}"


def review_jobs(store: str) -> ReviewJobs:
    return ReviewJobs(store)
