"""Prefect settings Retouch needs, applied before Prefect is imported, never over the user's own.

A user's profile or `PREFECT_API_URL` wins: runs then land on their server (checked first: an API that does
not answer fails the command in seconds instead of hanging). With neither, Prefect's ephemeral mode runs a
temporary local server: we make it work offline (no analytics or telemetry, a start-up timeout long enough
for a cold SQLite database) and quiet in the terminal. Command-line runs keep Prefect's chatter and failure
logs (tracebacks, repeated state messages) off the console, in a log file: the command prints one line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

EPHEMERAL_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # client-side telemetry: Prefect's SDK analytics honour DO_NOT_TRACK; Cloud's orchestration telemetry
    "DO_NOT_TRACK": "1",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
}
API_PROBE_SECONDS = 3.0
ERROR_LOG_NAME = "retouch-error.log"


class PrefectUnreachable(RuntimeError):
    """The configured Prefect API does not answer: `str(err)` is the one line to print."""


def configure_prefect() -> None:
    """Fill in offline defaults for settings the user has not set (environment or active profile)."""
    home = os.environ.get("PREFECT_HOME")
    if home:  # Prefect's temporary server cannot open its database in a folder that does not exist
        os.makedirs(os.path.expanduser(home), exist_ok=True)
    profile = _active_profile()
    for name, value in EPHEMERAL_DEFAULTS.items():
        if name not in os.environ and name not in profile:
            os.environ[name] = value


def prefect_home() -> Path:
    """$PREFECT_HOME (default ~/.prefect), as Prefect resolves it."""
    return Path(os.path.expanduser(os.environ.get("PREFECT_HOME", "~/.prefect")))


def _active_profile() -> dict[str, str]:
    """The settings of the user's active Prefect profile (read without importing Prefect)."""
    import tomllib

    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml"))
    if not profiles_path.is_file():
        return {}
    try:
        data = tomllib.loads(profiles_path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    settings = data.get("profiles", {}).get(active, {})
    return {str(k): str(v) for k, v in settings.items()} if isinstance(settings, dict) else {}


def _active_profile_settings() -> set[str]:
    """Names of the settings the user's active Prefect profile sets."""
    return set(_active_profile())


def configured_api_url() -> tuple[str, str] | None:
    """(url, where it was set) for the Prefect API the user chose, or None (Prefect's temporary server)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"], "PREFECT_API_URL"
    url = _active_profile().get("PREFECT_API_URL")
    return (url, "PREFECT_API_URL of your active Prefect profile") if url else None


def api_answers(api_url: str, timeout: float = API_PROBE_SECONDS) -> bool:
    """Whether a Prefect API answers GET <api_url>/health within `timeout` seconds."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):  # refused, reset, timed out, not a URL
        return False


LOCAL_API = "http://127.0.0.1:4200/api"  # where `retouch server` listens by default


def check_prefect_api(timeout: float = API_PROBE_SECONDS) -> None:
    """Before Prefect is imported: the Prefect API the user configured must answer, else PrefectUnreachable.

    Without this a closed port costs a minute of retries and a server that accepts and never answers
    hangs the command. With no API configured, a `retouch server` answering on 127.0.0.1:4200 is used
    (the runs show in its UI, and no temporary server is started: seconds saved on every command);
    otherwise Prefect starts its own temporary server.
    """
    configured = configured_api_url()
    if configured is None:
        if os.environ.get("RETOUCH_REUSE_LOCAL_SERVER", "1") != "0" and api_answers(LOCAL_API, timeout=0.5):
            os.environ["PREFECT_API_URL"] = LOCAL_API
        return
    if configured[0].startswith("https://api.prefect.cloud"):
        return
    url, origin = configured
    if not api_answers(url, timeout):
        raise PrefectUnreachable(
            f"the Prefect API at {url} ({origin}) is unreachable (no answer to /health within {timeout:g} s): "
            "start it (`retouch server`), or unset PREFECT_API_URL to run on a temporary local server")


def error_log_path() -> Path:
    """Where command-line runs keep the tracebacks they do not print: $PREFECT_HOME/retouch-error.log."""
    return prefect_home() / ERROR_LOG_NAME


class _WarningsOnly(logging.Filter):
    """The console of a command-line run: Prefect's warnings, but neither its progress chatter (the command
    prints its own result lines) nor failures (errors, tracebacks: the command prints one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.WARNING <= record.levelno < logging.ERROR and not record.exc_info


def quiet_failures_on_console() -> Path:
    """Command-line runs: Prefect's console shows warnings only (the command prints its results and one
    line per failure); every warning and failure, with its traceback, is appended to `error_log_path()`.
    The runs' full logs are in the Prefect UI. Returns the log's path."""
    import logging.handlers

    import prefect.main  # noqa: F401  (sets up Prefect's logging, whose console handler is filtered here)

    path = error_log_path()
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if not any(isinstance(f, _WarningsOnly) for f in handler.filters):
                handler.addFilter(_WarningsOnly())
    if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=1)
        file_handler.setLevel(logging.WARNING)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file_handler)
    return path


def current_run_id() -> str | None:
    """The Prefect flow run id when called inside a flow run, else None."""
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None
