"""What every stage flow shares: retries for transient storage errors, the store lock wait, skip states."""

from __future__ import annotations

from typing import Any

from prefect.states import Completed

from pipeline.errors import InputError

RETRY_DELAYS = [5, 30, 120]
LOCK_WAIT_SECONDS = 30.0


def is_transient(task: Any, run: Any, state: Any) -> bool:
    """Retry storage hiccups (OSError other than a missing file), never bad input or a busy store."""
    try:
        state.result()
    except (InputError, FileNotFoundError):
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


def finish(result: dict[str, Any]) -> Any:
    """A skipped stage ends in a Completed state named 'Skipped' (visible in the UI), else its result."""
    if result["skipped"]:
        return Completed(name="Skipped", message=f"unchanged (key {result['key'][:16]}…)", data=result)
    return result
