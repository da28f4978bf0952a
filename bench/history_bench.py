"""Benchmark the optional InfluxDB history on a synthetic home (default 5,000 devices, 50,000
entities, 50,000 states): points per second written, and how much longer a sync takes with it.

    python bench/history_bench.py [--entities N] [--influx-url URL]

Without --influx-url it starts Debian's VictoriaMetrics (which accepts influxdb-client writes) on
127.0.0.1 in a temporary folder. "A sync" here is what the sync job runs: the mirror write and the
analytics; "with history" adds loading the mirror, building the points and writing them.
Target (issue 6): with history, at most twice as long. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sync_bench import snapshot_of  # noqa: E402

from homeiq_pipeline import history, storage  # noqa: E402
from homeiq_pipeline.analytics import refresh_analytics  # noqa: E402
from homeiq_pipeline.defs.influxdb.resources import InfluxDBResource  # noqa: E402
from homeiq_pipeline.demo.synthetic import synthetic_results  # noqa: E402


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
                started = time.perf_counter()
                storage.sync_snapshot(engine, snapshot)
                refresh_analytics(engine, "home")
                sync_seconds = time.perf_counter() - started
                started = time.perf_counter()
                with engine.connect() as connection:
                    _, points = history.latest_sync_points(connection, "home")
                built = time.perf_counter()
                written = influxdb.write([point for batch in points.values() for point in batch])
                history_seconds, write_seconds = time.perf_counter() - started, time.perf_counter() - built
                print(f"{label}: sync (mirror + analytics) {sync_seconds:.2f} s; history {history_seconds:.2f} s "
                      f"({written} points, {written / history_seconds:.0f} points/s; the write alone "
                      f"{write_seconds:.2f} s, {written / write_seconds:.0f} points/s); with history / without: "
                      f"{(sync_seconds + history_seconds) / sync_seconds:.2f}x (target <= 2x)")
            engine.dispose()
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)


if __name__ == "__main__":
    main()
