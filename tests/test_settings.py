"""Prefect settings: offline defaults fill only what the user has not set (environment or active profile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import EPHEMERAL_DEFAULTS, configure_prefect


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in EPHEMERAL_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    return tmp_path


def test_defaults_apply_where_nothing_is_set(clean_env: Path) -> None:
    import os

    configure_prefect()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "90"


def test_user_environment_and_active_profile_win(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    (clean_env / "profiles.toml").write_text(
        'active = "lab"\n[profiles.lab]\nPREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS = "300"\n'
        'PREFECT_API_URL = "http://prefect.lab.example:4200/api"\n'
    )
    configure_prefect()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ
    assert "PREFECT_API_URL" not in os.environ  # never set by Retouch: the profile's server is used
