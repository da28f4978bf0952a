"""One real Home Assistant per tested release per test session, installed and started by the tests.

Every real-HA test runs once per release in `real_ha.HA_VERSIONS` (2025.4.4 under Python 3.13,
2025.1.4 under Python 3.12): the session fixture `ha_version` is parametrised, so pytest runs all
tests against one release, stops that HA, then runs them all against the next. Each release lives
in its own venv (`$HOMEIQ_HA_VENV/<version>`, default ~/.cache/homeiq/ha-venvs/<version>: built
once, 1-3 minutes, then reused), listens on 127.0.0.1 on a free port, keeps its config in
pytest's tmp dir, and is stopped by PID when its tests end, even after failures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..servers import REQUIRED_BY, missing
from .helpers import (
    RealHomeAssistant,
    ensure_running,
    real_ha,
    start_or_fail,
)


def how_to_get_python(version: str) -> str:
    python = real_ha.RELEASES[version].python
    minor = ".".join(python.split(".")[:2])
    return (
        f"install it with `pyenv install {python}` (or any `python{minor}` on PATH), or build the venv "
        f"elsewhere into $HOMEIQ_HA_VENV/{version}"
    )


@pytest.fixture(scope="session", params=real_ha.HA_VERSIONS)
def ha_version(request: pytest.FixtureRequest) -> str:
    """The Home Assistant release this test runs against (every real-HA test runs on each)."""
    return str(request.param)


@pytest.fixture(scope="session")
def hass_executable(ha_version: str) -> Path:
    """The `hass` of this release's venv, built first if needed (CI builds it from scratch)."""
    venv = real_ha.default_venv(ha_version)
    if not (venv / "bin" / "python").is_file():  # an existing venv no longer needs the interpreter
        try:
            real_ha.find_python(ha_version)
        except RuntimeError as exc:
            missing(
                f"REAL HOME ASSISTANT TIER NOT RUN for {ha_version}: {exc}. To run it, "
                f"{how_to_get_python(ha_version)}. ({REQUIRED_BY}=1, which CI sets, turns "
                "this skip into a failure.)"
            )
    try:
        return real_ha.ensure_venv(venv, ha_version=ha_version)
    except Exception as exc:  # pip's own output is in the message
        pytest.fail(f"installing homeassistant=={ha_version} into {venv} failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def session_ha(
    ha_version: str, hass_executable: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealHomeAssistant]:
    """The demo house (demo + kitchen_sink), started once and shared by the whole session."""
    server = RealHomeAssistant(hass_executable, tmp_path_factory.mktemp(f"ha-demo-{ha_version}"))
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
