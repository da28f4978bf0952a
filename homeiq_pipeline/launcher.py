"""`homeiq-pipeline run`: the Dagster UI and daemon (`dagster dev`) with this project's code location.

The reconnect sensor syncs on its first contact with Home Assistant, so a sync lands within about
a minute of start-up. The instance settings (dagster.yaml) and the workspace (the location named
`homeiq_pipeline`) come from the package itself, so a wheel install runs exactly as a checkout does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from .settings import Settings

PACKAGE = resources.files(__package__)


DEMO_INSTANCE = "demo"  # the demo's home name, in its own database


def dagster_home(settings: Settings, *, demo: bool = False) -> Path:
    """DAGSTER_HOME, or data/dagster; the demo's is always its own, data/demo/dagster, so its runs
    never show in the real UI."""
    chosen = settings.data_dir / "demo" / "dagster" if demo else settings.dagster_home or settings.data_dir / "dagster"
    return chosen.expanduser().resolve()


def install_instance_settings(home: Path) -> None:
    """The package's dagster.yaml in `home`, unless it has one (then it is the person's to edit)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        with resources.as_file(PACKAGE / "dagster.yaml") as shipped:
            shutil.copyfile(shipped, home / "dagster.yaml")


# Dagster 1.13 marks `dagster dev` superseded by `dg dev` and says so on every start; `dg dev` (the
# dagster-dg-cli package, which needs a `dg` project layout) itself runs `dagster dev`. Python's own
# warnings filter, for that one message and that one process: any other warning still shows.
DEV_IS_SUPERSEDED = "ignore:Function `dev_command` is superseded:FutureWarning"


def dagster_command(host: str, port: int, workspace: Path) -> list[str]:
    return [
        *(sys.executable, "-W", DEV_IS_SUPERSEDED, "-m", "dagster", "dev"),
        *("-w", str(workspace), "-h", host, "-p", str(port)),
    ]


def demo_environment(settings: Settings, ha_url: str, token: str) -> dict[str, str]:
    """What `run --demo` points everything at: the demo HA, its own database and instance name."""
    return {
        "HA_URL": ha_url,
        "HA_TOKEN": token,
        "HOMEIQ_DB_URL": settings.demo_db_url,
        "HOMEIQ_INSTANCE": DEMO_INSTANCE,
        # The demo looks more often, unless told otherwise.
        "HA_SENSOR_INTERVAL_SECONDS": str(
            settings.sensor_interval_seconds if "sensor_interval_seconds" in settings.model_fields_set else 10
        ),
    }


def run_dagster(home: Path, extra_env: Mapping[str, str], host: str, port: int) -> int:
    """Run `dagster dev` on the instance in `home` until it exits or we are asked to stop
    (SIGTERM / Ctrl-C), then stop it."""
    install_instance_settings(home)
    env = {**os.environ, **extra_env, "DAGSTER_DISABLE_TELEMETRY": "1", "DAGSTER_HOME": str(home)}
    print(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={home})", flush=True)
    process: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # dagster dev shuts down cleanly on SIGINT

    # Handlers first: a child inherits an *ignored* SIGINT (as in any background job of a
    # script), and dagster dev would then ignore Ctrl-C and our stop request.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    with resources.as_file(PACKAGE / "workspace.yaml") as workspace:
        # Its own process group, so stopping it stops the webserver, daemon and code server it started.
        process = subprocess.Popen(dagster_command(host, port, workspace), env=env, start_new_session=True)
        try:
            return process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
