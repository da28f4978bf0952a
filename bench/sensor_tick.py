"""Benchmark one tick of the reconnect sensor (`home_assistant_reconnect`), evaluated the way the
daemon does it (`dg.build_sensor_context` + the real sensor), against:

- a healthy Home Assistant: the protocol server (default), and a real HA 2025.4.4 with --real-ha
  (its venv is built on first use, see README "The real Home Assistant tier");
  both the first contact (it requests a sync) and a steady tick (cursor carried, nothing changed);
- an unreachable one: a closed port (refused at once), and a silent one that accepts TCP and
  never answers (bounded by the sensor's connect timeout, min(HA_TIMEOUT, 10 s); --silent-timeout).

    python bench/sensor_tick.py [--ticks 30] [--silent-ticks 3] [--silent-timeout 2] [--real-ha]

Target (issue 9): a healthy tick under 200 ms. Prints median and max; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from homeiq_pipeline.definitions import defs
from homeiq_pipeline.defs.home_assistant import sensors
from homeiq_pipeline.defs.home_assistant.resources import one_home
from homeiq_pipeline.demo.server import DemoHomeAssistant

TOKEN = "bench-token-not-a-secret"


class Ticker:
    """Evaluates the real sensor against one home, carrying the cursor like the daemon."""

    def __init__(self, url: str, token: str, instance: dg.DagsterInstance, timeout: float = 30.0) -> None:
        self.resource = one_home(url, token, timeout=timeout)
        self.instance = instance
        self.repository = defs().get_repository_def()
        self.cursor: str | None = None

    def tick(self) -> tuple[float, dg.SensorResult]:
        started = time.perf_counter()
        context = dg.build_sensor_context(
            cursor=self.cursor, instance=self.instance, resources={"home_assistant": self.resource},
            repository_def=self.repository,
        )
        result = sensors.home_assistant_reconnect.evaluate_tick(context)
        elapsed = time.perf_counter() - started
        self.cursor = result.cursor
        return elapsed, result


def measure(label: str, ticks: int, make: Callable[[], Ticker], *, fresh_cursor: bool) -> None:
    ticker = make()
    ticker.tick()  # warm-up: imports, first connection
    times, outcome = [], ""
    for _ in range(ticks):
        if fresh_cursor:
            ticker.cursor = None
        elapsed, result = ticker.tick()
        times.append(elapsed * 1000)
        outcome = f"{len(result.run_requests or [])} run request(s)" if result.run_requests else f"skip: {result.skip_message}"
    print(f"  {label:<44} median {statistics.median(times):8.1f} ms   max {max(times):8.1f} ms   ({ticks} ticks)")
    print(f"  {'':<44} last outcome: {outcome[:110]}")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=30, help="ticks per healthy measurement (default 30)")
    parser.add_argument("--silent-ticks", type=int, default=3, help="ticks against the silent server (default 3)")
    parser.add_argument("--silent-timeout", type=float, default=2.0,
                        help="the resource's timeout for the silent server, seconds (default 2; the sensor caps it at 10)")
    parser.add_argument("--real-ha", action="store_true", help="also measure against a real Home Assistant 2025.4.4")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the sensor's per-tick log lines

    with dg.instance_for_test() as instance:
        print(f"Reconnect sensor tick (dg.build_sensor_context + evaluate_tick), cap {sensors.LOOK_TIMEOUT:g} s per look")
        with DemoHomeAssistant(token=TOKEN) as server:
            print(f"protocol server (recorded HA 2025.4.4) at {server.url}")
            measure("healthy, first contact (requests a sync)", args.ticks,
                    lambda: Ticker(server.url, TOKEN, instance), fresh_cursor=True)
            measure("healthy, steady (nothing changed)", args.ticks,
                    lambda: Ticker(server.url, TOKEN, instance), fresh_cursor=False)
        if args.real_ha:
            import real_ha

            hass = real_ha.ensure_venv(real_ha.default_venv())
            with tempfile.TemporaryDirectory(prefix="homeiq-sensor-bench-") as tmp:
                ha = real_ha.RealHomeAssistant(hass, Path(tmp) / "ha")
                try:
                    ha.start()
                    print(f"real Home Assistant {real_ha.HA_VERSION} at {ha.url}")
                    measure("healthy, first contact (requests a sync)", args.ticks,
                            lambda: Ticker(ha.url, ha.token, instance), fresh_cursor=True)
                    measure("healthy, steady (nothing changed)", args.ticks,
                            lambda: Ticker(ha.url, ha.token, instance), fresh_cursor=False)
                finally:
                    ha.stop()
        print("unreachable")
        refused = f"http://127.0.0.1:{closed_port()}"
        measure("closed port (connection refused)", args.ticks, lambda: Ticker(refused, TOKEN, instance), fresh_cursor=False)
        with silent_server() as url:
            measure(f"silent server (timeout {min(args.silent_timeout, sensors.LOOK_TIMEOUT):g} s)", args.silent_ticks,
                    lambda: Ticker(url, TOKEN, instance, timeout=args.silent_timeout), fresh_cursor=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
