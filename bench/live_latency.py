"""Live-mode latency: from a change made in a real Home Assistant to the change visible in the mirror.

Starts a real Home Assistant (the demo house, offline on 127.0.0.1), a real Dagster webserver and
daemon (`homeiq-pipeline run`, reconnect sensor and refresh schedule switched off, so only the
watcher syncs) and `homeiq-pipeline watch` with its default debounce (2 s unless
HA_WATCH_DEBOUNCE_SECONDS says otherwise). Dagster is warmed up with two changes first; then it
renames a device N times through HA's websocket API, one at a time with Dagster idle in between,
and polls the mirror (SQLite) every 50 ms until the new name is there. Prints each latency,
their median and worst, and where the time goes (from the runs' times in Dagster). Asserts nothing.

    python bench/live_latency.py [--changes 20] [--ha-version 2025.4.4]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import real_ha

from homeiq_pipeline import storage
from homeiq_pipeline.storage.schema import devices
from tests.helpers import FINISHED, launched, switch_off_sensor_and_schedule, sync_runs, wait_for


def mirror_name(engine: sa.Engine, device_id: str) -> str | None:
    table = devices.table
    with engine.connect() as connection:
        return connection.execute(
            sa.select(table.c.name_by_user).where(table.c.id == device_id, table.c.removed_at.is_(None))
        ).scalar()


def all_finished(url: str) -> bool:
    return all(run["status"] in FINISHED for run in sync_runs(url))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="measured changes (default 20)")
    parser.add_argument("--ha-version", default=real_ha.HA_VERSION, help=f"Home Assistant release (default {real_ha.HA_VERSION})")
    args = parser.parse_args()

    hass = real_ha.ensure_venv(real_ha.default_venv(args.ha_version), ha_version=args.ha_version)
    with tempfile.TemporaryDirectory(prefix="homeiq-live-latency-") as tmp_name:
        tmp = Path(tmp_name)
        server = real_ha.RealHomeAssistant(hass, tmp / "ha")
        server.start()
        watcher: subprocess.Popen[bytes] | None = None
        try:
            with launched(tmp, server.url, server.token) as (url, _log):
                switch_off_sensor_and_schedule(url)
                wait_for("runs from before the switch-off", lambda: all_finished(url), timeout=300)
                env = {**os.environ, "HA_URL": server.url, "HA_TOKEN": server.token, "HOMEIQ_DAGSTER_URL": url}
                env.pop("HOMEIQ_HOMES_FILE", None)
                with (tmp / "watch.log").open("wb") as out:
                    watcher = subprocess.Popen([sys.executable, "-m", "homeiq_pipeline.cli", "watch"],
                                               env=env, stdout=out, stderr=subprocess.STDOUT)
                wait_for("the watcher's first sync", lambda: any(r["status"] == "SUCCESS" for r in sync_runs(url)),
                         timeout=300)
                engine = storage.open_database(f"sqlite:///{tmp / 'mirror.db'}")
                device = real_ha.ws_command(server.url, server.token, "config/device_registry/list")[0]
                wait_for("Dagster idle", lambda: all_finished(url), timeout=300)

                latencies: list[float] = []
                for number in range(-2, args.changes):  # two warm-up changes, not counted
                    name = f"Latency {number} {time.time():.0f}"
                    runs_before = len(sync_runs(url))
                    changed = time.monotonic()
                    real_ha.ws_command(server.url, server.token, "config/device_registry/update",
                                       device_id=device["id"], name_by_user=name)
                    while mirror_name(engine, device["id"]) != name:
                        if time.monotonic() - changed > 300:
                            raise SystemExit(f"change {number} did not reach the mirror within 300 s")
                        time.sleep(0.05)
                    seconds = time.monotonic() - changed
                    wait_for("Dagster idle", lambda: all_finished(url), timeout=300)
                    if number >= 0:
                        latencies.append(seconds)
                        print(f"  change {number + 1:2d}: {seconds:5.2f} s  ({len(sync_runs(url)) - runs_before} run)", flush=True)
                runs = [r for r in sync_runs(url) if r["tags"].get("homeiq/trigger") == "watch"][-args.changes:]
                real_ha.ws_command(server.url, server.token, "config/device_registry/update",
                                   device_id=device["id"], name_by_user=device["name_by_user"])
                engine.dispose()
        finally:
            if watcher is not None and watcher.poll() is None:
                watcher.send_signal(signal.SIGTERM)
                watcher.wait(timeout=30)
            server.stop()

    debounce = float(os.environ.get("HA_WATCH_DEBOUNCE_SECONDS") or 2)
    queued = [r["startTime"] - r["creationTime"] for r in runs if r["startTime"]]
    running = [r["endTime"] - r["startTime"] for r in runs if r["endTime"] and r["startTime"]]
    print(f"\nHome Assistant {args.ha_version} demo house; watcher debounce {debounce:g} s; warm Dagster; "
          f"{len(latencies)} device renames, one at a time")
    print(f"  change in HA -> visible in the mirror: median {statistics.median(latencies):.2f} s, "
          f"worst {max(latencies):.2f} s, best {min(latencies):.2f} s")
    print(f"  of which (median): run created -> started {statistics.median(queued):.2f} s, "
          f"started -> finished {statistics.median(running):.2f} s; the rest is the debounce and the launch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
