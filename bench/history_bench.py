"""Benchmark the optional InfluxDB history on a synthetic home (default 5,000 devices, 50,000
entities, 50,000 states): points per second written, and how much longer a sync takes with it.

    python bench/history_bench.py [--entities N] [--influx-url URL]

Without --influx-url it starts Debian's VictoriaMetrics (which accepts influxdb-client writes) on
127.0.0.1 in a temporary folder. Two measurements:
- the steps alone: the mirror write and the analytics ("a sync" without fetching), then the history
  step (building the points from the picture the analytics read, and writing them);
- the sync as users run it: Dagster materializes the registry and analytics assets of one home from
  a websocket server holding the synthetic home, with and without the history asset (median of 3).
Target (issue 6): with history, at most twice as long. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dagster as dg
from sync_bench import snapshot_of

from homeiq_pipeline import history, storage
from homeiq_pipeline.analytics import PictureCache, refresh_analytics
from homeiq_pipeline.defs.influxdb.resources import InfluxDBResource
from homeiq_pipeline.demo.server import DemoHomeAssistant
from homeiq_pipeline.demo.synthetic import synthetic_results

TOKEN = "bench-token"


def start_victoria_metrics(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        raise SystemExit("victoria-metrics is not installed (apt-get install victoria-metrics), or pass --influx-url")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={folder}", "-retentionPeriod=100y"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("VictoriaMetrics did not start")


def changed(results: dict) -> dict:
    """The same home an hour later: 1% of the states have new values."""
    states = [dict(state) for state in results["get_states"]]
    for state in states[::100]:
        state["state"] = "42.0"
    return {**results, "get_states": states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5_000)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--states", type=int, default=50_000)
    parser.add_argument("--influx-url", help="an InfluxDB 2 (or compatible) write endpoint; default: start VictoriaMetrics")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="homeiq-history-bench-") as tmp:
        server, url = (None, args.influx_url) if args.influx_url else start_victoria_metrics(Path(tmp) / "vm")
        try:
            results = synthetic_results(args.devices, args.entities, args.states)
            engine = storage.open_database(f"sqlite:///{Path(tmp) / 'mirror.db'}")
            influxdb = InfluxDBResource(url=url, token="bench", org="homeiq", bucket="home")
            print(f"synthetic home: {args.devices} devices, {args.entities} entities, {args.states} states; "
                  f"line-protocol server {url}")
            # The first sync creates every series; later ones (1% of states changed) write into them.
            for label, snapshot in (("first sync", snapshot_of(results)), ("next sync", snapshot_of(changed(results)))):
                cache = PictureCache()  # one per run, as the Dagster resource keeps it
                started = time.perf_counter()
                storage.sync_snapshot(engine, snapshot)
                refresh_analytics(engine, "home", cache)
                sync_seconds = time.perf_counter() - started
                started = time.perf_counter()
                with engine.connect() as connection:
                    _, points = history.latest_sync_points(connection, "home", cache)
                built = time.perf_counter()
                written = influxdb.write([point for batch in points.values() for point in batch])
                history_seconds, write_seconds = time.perf_counter() - started, time.perf_counter() - built
                print(f"{label}: sync (mirror + analytics) {sync_seconds:.2f} s; history {history_seconds:.2f} s "
                      f"({written} points, {written / history_seconds:.0f} points/s; the write alone "
                      f"{write_seconds:.2f} s, {written / write_seconds:.0f} points/s); with history / without: "
                      f"{(sync_seconds + history_seconds) / sync_seconds:.2f}x (target <= 2x)")
            engine.dispose()
            if args.influx_url:
                through_dagster(results, Path(tmp), influxdb)
            else:  # a server of its own, so its first sync creates every series again
                second, second_url = start_victoria_metrics(Path(tmp) / "vm2")
                try:
                    through_dagster(results, Path(tmp), InfluxDBResource(url=second_url, token="bench", org="homeiq", bucket="home"))
                finally:
                    second.terminate()
                    second.wait(10)
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)


def through_dagster(results: dict, folder: Path, influxdb: InfluxDBResource) -> None:
    """The sync job's work as Dagster runs it, fetch included, with and without the history asset."""
    os.environ["STORE_DEVICE_HISTORY_IN_INFLUXDB"] = "true"  # read by the history asset at run time
    from homeiq_pipeline.defs.analytics.assets import home_analytics
    from homeiq_pipeline.defs.home_assistant.assets import home_assistant_mirror
    from homeiq_pipeline.defs.influxdb.assets import home_assistant_history
    from homeiq_pipeline.defs.home_assistant.resources import one_home
    from homeiq_pipeline.defs.resources import MirrorDatabase

    seconds: dict[str, list[float]] = {"without history": [], "with history": []}
    assets = {"without history": [home_assistant_mirror, home_analytics],
              "with history": [home_assistant_mirror, home_analytics, home_assistant_history]}
    with DemoHomeAssistant(results, token=TOKEN) as server:
        def resources(database: str) -> dict:
            return {"home_assistant": one_home(server.url, TOKEN), "influxdb": influxdb,
                    "mirror": MirrorDatabase(url=f"sqlite:///{folder / database}")}

        first = {}
        for label in ("without history", "with history"):  # each into an empty mirror; the server has no series yet
            started = time.perf_counter()
            assert dg.materialize(assets[label], resources=resources(f"first-{len(label)}.db"), partition_key="home").success
            first[label] = time.perf_counter() - started
        print(f"through Dagster, a home's first sync: without history {first['without history']:.2f} s, with history "
              f"{first['with history']:.2f} s: {first['with history'] / first['without history']:.2f}x")
        resources = resources("dagster-mirror.db")
        dg.materialize(assets["with history"], resources=resources, partition_key="home")
        for round_ in range(3):
            for label, selected in assets.items():
                with server.lock:  # 1% of the states change between syncs, as in a lived-in home
                    for state in server.results["get_states"][round_::100]:
                        state["state"] = f"{round_ + len(label)}.5"
                started = time.perf_counter()
                result = dg.materialize(selected, resources=resources, partition_key="home")
                assert result.success
                seconds[label].append(time.perf_counter() - started)
    without, with_history = (statistics.median(seconds[k]) for k in ("without history", "with history"))
    print(f"through Dagster (fetch over websocket, mirror, analytics), later syncs, median of 3: without history {without:.2f} s, "
          f"with history {with_history:.2f} s: {with_history / without:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
