"""Prefect settings Retouch needs, applied before Prefect is imported, never over the user's own.

A user's profile or `PREFECT_API_URL` wins: runs then land on their server. With neither, Prefect's
ephemeral mode runs a temporary local server: we make it work offline (no analytics DNS lookups, a
start-up timeout long enough for a cold SQLite database) and quiet in the terminal.
"""

from __future__ import annotations

import os

EPHEMERAL_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def configure_prefect() -> None:
    """Fill in offline defaults for settings the user has not set (environment or active profile)."""
    home = os.environ.get("PREFECT_HOME")
    if home:  # Prefect's temporary server cannot open its database in a folder that does not exist
        os.makedirs(os.path.expanduser(home), exist_ok=True)
    profile = _active_profile_settings()
    for name, value in EPHEMERAL_DEFAULTS.items():
        if name not in os.environ and name not in profile:
            os.environ[name] = value


def _active_profile_settings() -> set[str]:
    """Names of the settings the user's active Prefect profile sets (read without importing Prefect)."""
    import tomllib
    from pathlib import Path

    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml"))
    if not profiles_path.is_file():
        return set()
    try:
        data = tomllib.loads(profiles_path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    return set(data.get("profiles", {}).get(active, {}))


def current_run_id() -> str | None:
    """The Prefect flow run id when called inside a flow run, else None."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None
