"""Prefect flow for the ingest stage (the work is in `pipeline.ingest`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, task

from flows.settings import current_run_id
from pipeline.engine import EngineConfig
from pipeline.ingest import IngestConfig, ingest


@task(name="ingest-scan", retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=lambda task, run, state: _is_transient(state))
def ingest_task(source: str, store: str, config: IngestConfig, engine: EngineConfig, force: bool) -> dict[str, Any]:
    result = ingest(source, store, config=config, engine=engine, force=force, run_id=current_run_id())
    return asdict(result)


def _is_transient(state: Any) -> bool:
    """Retry storage hiccups (OSError other than a missing file), never bad input."""
    from pipeline.errors import InputError

    try:
        state.result()
    except InputError:
        return False
    except FileNotFoundError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


@flow(name="ingest", log_prints=True)
def ingest_flow(source: str, store: str, chunk: int = 1024, workers: int = 0, force: bool = False,
                dask_address: str | None = None) -> dict[str, Any]:
    """Stream a scan file into the store's `scan/` OME-Zarr pyramid."""
    config = IngestConfig(chunk=chunk)
    engine = EngineConfig(workers=workers, address=dask_address)
    result = ingest_task(source, store, config, engine, force)
    print(("skipped (unchanged): " if result["skipped"] else "ingested: ") + f"{source} -> {store}")
    return result
