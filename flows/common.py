"""What every stage flow shares: retries for transient storage errors, the store lock wait, skip states."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from prefect.states import Completed

from pipeline.errors import InputError

RETRY_DELAYS = [5, 30, 120]
LOCK_WAIT_SECONDS = 30.0


# OSErrors that another try can cure: a dropped or refused connection, a timeout, an interrupted call,
# a busy or briefly unavailable resource (object stores, network filesystems). A full disk, a file that
# exists, a permission, a missing path or a read-only filesystem stay as they are: retrying them only
# delays the error by minutes.
TRANSIENT_ERRNOS = frozenset({
    errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
    errno.ECONNABORTED, errno.EPIPE, errno.ENETDOWN, errno.ENETUNREACH, errno.ENETRESET, errno.EHOSTUNREACH,
    errno.EHOSTDOWN, errno.ESTALE, errno.EIO,
})


def is_transient_error(exc: BaseException) -> bool:
    """Whether `exc` is a storage or network hiccup worth retrying (never bad input or a busy store)."""
    if isinstance(exc, InputError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    return False


def is_transient(task: Any, run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry a failed task only when `is_transient_error` says so."""
    try:
        state.result()
    except Exception as exc:
        return is_transient_error(exc)
    return False


def run_name(stage: str) -> Callable[[], str]:
    """A flow's `flow_run_name`: '<scan id> · <stage>' (the store's name without .zarr), readable in the UI."""

    def name() -> str:
        from prefect.runtime import flow_run

        store = str(flow_run.parameters.get("store") or "")
        scan_id = PurePosixPath(store.rstrip("/")).name.removesuffix(".zarr") or "scan"
        return f"{scan_id} · {stage}"

    return name


def finish(result: dict[str, Any]) -> Any:
    """A skipped stage ends in a Completed state named 'Skipped', else its result. Prefect's UI colours every
    Completed-type state alike, so a skipped run is also renamed '<name> · skipped': the graph's node says it."""
    if result["skipped"]:
        mark_run_skipped()
        return Completed(name="Skipped", message=f"unchanged (key {result['key'][:16]}…)", data=result)
    return result


def mark_run_skipped() -> None:
    """Append ' · skipped' to the current flow run's name (a no-op outside a flow run or without the API)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id or str(flow_run.name).endswith(" · skipped"):
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=f"{flow_run.name} · skipped")
    except Exception:  # the name is a courtesy of the UI; the state already says Skipped
        return
