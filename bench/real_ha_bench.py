"""Benchmark a real, large Home Assistant 2025.4.4 and our sync of it.

Starts HA offline on 127.0.0.1 with the demo house plus N generated registry entities
(scripts/large_home.py), then prints: HA's start-up (first start with onboarding, and a plain
restart: when the websocket first answers, when it reports RUNNING), HA's stop time, how long HA
takes to answer each command and how large each frame is, and our sync's end-to-end time into a
fresh SQLite file (and a no-change resync). Prints numbers; asserts nothing.

    python bench/real_ha_bench.py [--entities 5000]

Needs the HA 2025.4.4 venv (`$HOMEIQ_HA_VENV/2025.4.4`, default ~/.cache/homeiq/ha-venvs/2025.4.4; built on first use).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import large_home  # noqa: E402
import real_ha  # noqa: E402

from homeiq_pipeline import storage  # noqa: E402
from homeiq_pipeline.homeassistant import (  # noqa: E402
    LIST_COMMANDS,
    CannotConnect,
    HomeAssistantClient,
    RequestTimeout,
    fetch_snapshot,
    websocket_url,
)

MB = 1_000_000


def core_state(server: real_ha.RealHomeAssistant) -> str | None:
    try:
        return str(real_ha.ws_command(server.url, server.token, "get_config")["state"])
    except (CannotConnect, RequestTimeout):
        return None


def timed_restart(server: real_ha.RealHomeAssistant) -> tuple[float, float, float]:
    """(stop seconds, seconds until the websocket answers, seconds until RUNNING)."""
    started = time.perf_counter()
    server.stop()
    stopped = time.perf_counter()
    server.start(wait=False)
    answering = None
    while (state := core_state(server)) != "RUNNING":
        if state is not None and answering is None:
            answering = time.perf_counter() - stopped
        if not server.is_alive():
            raise SystemExit(f"hass exited while starting:\n{server.log_tail()}")
        time.sleep(0.05)
    running = time.perf_counter() - stopped
    return stopped - started, answering if answering is not None else running, running


def frame_sizes(server: real_ha.RealHomeAssistant) -> dict[str, int]:
    """Per command, the bytes of HA's answer, read on a raw connection without coalescing, so
    each answer is exactly one websocket frame."""
    ws = websocket.create_connection(websocket_url(server.url), timeout=120, suppress_origin=True)
    try:
        ws.recv()  # auth_required
        ws.send(json.dumps({"type": "auth", "access_token": server.token}))
        if json.loads(ws.recv()).get("type") != "auth_ok":
            raise SystemExit("authentication failed")
        sizes = {}
        for number, command in enumerate(["get_config", *LIST_COMMANDS.values()], start=1):
            ws.send(json.dumps({"id": number, "type": command}))
            _, data = ws.recv_data()
            sizes[command] = len(data)
        return sizes
    finally:
        ws.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=5000, help="generated registry entities (default 5000)")
    args = parser.parse_args()

    hass = real_ha.ensure_venv(real_ha.default_venv())
    with tempfile.TemporaryDirectory(prefix="homeiq-real-ha-bench-") as tmp:
        config_dir = Path(tmp) / "ha"
        large_home.write_large_home(config_dir, real_ha.free_port(), args.entities)
        server = real_ha.RealHomeAssistant(hass, config_dir)
        try:
            started = time.perf_counter()
            server.start()
            first_start = time.perf_counter() - started
            stop_seconds, answering, running = timed_restart(server)
            rss_mb = psutil.Process(server.pid).memory_info().rss / MB if server.pid else float("nan")

            print(f"Home Assistant {real_ha.HA_VERSION}, demo house + {args.entities:,} generated entities")
            print(f"  first start (incl. onboarding, token):  {first_start:6.2f} s")
            print(f"  stop (SIGTERM until exit):               {stop_seconds:6.2f} s")
            print(f"  restart: websocket answers after         {answering:6.2f} s")
            print(f"  restart: RUNNING after                   {running:6.2f} s")
            print(f"  hass RSS after start:                    {rss_mb:6.0f} MB")

            # The first sync after a start meets HA's caches cold (it builds each list's JSON on
            # first request and keeps it until the registry changes); later syncs find them warm.
            database = Path(tmp) / "mirror.db"
            engine = storage.open_database(f"sqlite:///{database}")
            started = time.perf_counter()
            with HomeAssistantClient(server.url, server.token, timeout=real_ha.WS_TIMEOUT) as client:
                cold = fetch_snapshot(client)
            fetched = time.perf_counter() - started
            result = storage.sync_snapshot(engine, cold)
            end_to_end = time.perf_counter() - started
            started = time.perf_counter()
            with HomeAssistantClient(server.url, server.token, timeout=real_ha.WS_TIMEOUT) as client:
                warm = fetch_snapshot(client)
            resync = storage.sync_snapshot(engine, warm)
            resync_seconds = time.perf_counter() - started
            engine.dispose()
            sizes = frame_sizes(server)

            counts = cold.counts()
            print("\n  command                          items   frame MB   cold s   warm s")
            for command in ["get_config", *LIST_COMMANDS.values()]:
                field = next((f for f, c in LIST_COMMANDS.items() if c == command), None)
                items = counts[field] if field else 1
                print(
                    f"  {command:30s} {items:7,d} {sizes[command] / MB:10.2f} "
                    f"{cold.command_seconds[command]:8.3f} {warm.command_seconds[command]:8.3f}"
                )
            print("  (seconds from sending a command to its decoded answer: the first sync after the")
            print("   start, then the next one)")
            print(f"\n  first sync end to end (connect, fetch, store into a new SQLite): {end_to_end:6.2f} s")
            print(f"    of which fetching from HA:                                    {fetched:6.2f} s")
            print(f"    rows written: {result.rows_written:,}; database {database.stat().st_size / MB:.1f} MB")
            print(f"  next sync end to end:                                           {resync_seconds:6.2f} s"
                  f" ({resync.rows_written:,} rows written)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
