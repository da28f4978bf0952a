"""`homeiq-pipeline run`: the Dagster UI and daemon (`dagster dev`) with this project's code location.

The reconnect sensor syncs on its first contact with Home Assistant, so a sync lands within about
a minute of start-up. With `--demo`, a labelled demo Home Assistant is started first and
everything points at it (its own database and instance name, so demo rows never mix with real ones).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from . import settings, storage

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # a source checkout: workspace.yaml, dagster.yaml


def dagster_home(env: Mapping[str, str]) -> Path:
    """DAGSTER_HOME, or data/dagster; it gets the project's dagster.yaml if it has none."""
    home = Path(env.get("DAGSTER_HOME") or Path(env.get("HOMEIQ_DATA_DIR") or "data") / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    shipped = PROJECT_ROOT / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and shipped.exists():
        shutil.copyfile(shipped, home / "dagster.yaml")
    return home


def dagster_command(host: str, port: int) -> list[str]:
    workspace = PROJECT_ROOT / "workspace.yaml"
    location = ["-w", str(workspace)] if workspace.exists() else ["-m", "homeiq_pipeline.definitions"]
    return [sys.executable, "-m", "dagster", "dev", *location, "-h", host, "-p", str(port)]


def demo_environment(ha_url: str, token: str) -> dict[str, str]:
    db_url = os.environ.get("HOMEIQ_DEMO_DB_URL") or storage.default_database_url().replace("homeiq.db", "demo.db")
    return {
        "HA_URL": ha_url,
        "HA_TOKEN": token,
        "HOMEIQ_DB_URL": db_url,
        "HOMEIQ_INSTANCE": "demo",
        "HA_SENSOR_INTERVAL_SECONDS": os.environ.get("HA_SENSOR_INTERVAL_SECONDS") or "10",
    }


def run_dagster(extra_env: Mapping[str, str], host: str, port: int) -> int:
    """Run `dagster dev` until it exits or we are asked to stop (SIGTERM / Ctrl-C), then stop it."""
    env = {**os.environ, **extra_env, "DAGSTER_DISABLE_TELEMETRY": "1"}
    env["DAGSTER_HOME"] = str(dagster_home(env))
    env.setdefault("HOMEIQ_DB_URL", settings.database_url())
    print(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']})", flush=True)
    process: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # dagster dev shuts down cleanly on SIGINT

    # Handlers first: a child inherits an *ignored* SIGINT (as in any background job of a
    # script), and dagster dev would then ignore Ctrl-C and our stop request.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    # Its own process group, so stopping it stops the webserver, daemon and code server it started.
    process = subprocess.Popen(dagster_command(host, port), env=env, start_new_session=True)
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
