"""One real Home Assistant 2025.4.4 per test session, installed and started by the tests.

HA lives in its own Python 3.13 venv (`$HOMEIQ_HA_VENV`, default ~/.cache/homeiq/ha-venv: built
once, 2-3.5 minutes, then reused), listens on 127.0.0.1 on a free port, keeps its config in
pytest's tmp dir, and is stopped by PID when the session ends, even after failures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import (
    REQUIRE_REAL_SERVERS,
    RealHomeAssistant,
    ensure_running,
    real_ha,
    real_servers_required,
    start_or_fail,
)

HOW_TO_GET_PYTHON_313 = (
    "install it with `pyenv install 3.13.0` (or any `python3.13` on PATH), or point HOMEIQ_HA_VENV "
    "at an existing Home Assistant venv"
)


@pytest.fixture(scope="session")
def hass_executable() -> Path:
    """The `hass` of the pinned HA venv, built first if needed (CI builds it from scratch)."""
    venv = real_ha.default_venv()
    if not (venv / "bin" / "python").is_file():  # an existing venv no longer needs the interpreter
        try:
            real_ha.find_python313()
        except RuntimeError as exc:
            reason = (
                f"REAL HOME ASSISTANT TIER NOT RUN: {exc}. To run it, {HOW_TO_GET_PYTHON_313}. "
                f"({REQUIRE_REAL_SERVERS}=1, which CI sets, turns this skip into a failure.)"
            )
            if real_servers_required():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    try:
        return real_ha.ensure_venv(venv)
    except Exception as exc:  # pip's own output is in the message
        pytest.fail(f"installing homeassistant=={real_ha.HA_VERSION} into {venv} failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def session_ha(hass_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealHomeAssistant]:
    """The demo house (demo + kitchen_sink), started once and shared by the whole session."""
    server = RealHomeAssistant(hass_executable, tmp_path_factory.mktemp("ha-demo"))
    try:
        start_or_fail(server)
        yield server
    finally:
        server.stop()  # by the PID we started; SIGKILL after 30 s


@pytest.fixture
def ha(session_ha: RealHomeAssistant) -> RealHomeAssistant:
    """The session's HA, RUNNING: started again if an earlier test left it stopped."""
    ensure_running(session_ha)
    return session_ha
