"""Record the fast tier's fixtures (and the demo's data) from a real Home Assistant.

    python scripts/record_fixtures.py --start-real-ha        # installs and starts HA 2025.4.4 itself,
                                                             # and adds floors, labels and area assignments
    python scripts/record_fixtures.py --start-real-ha --ha-version 2025.1.4   # the other tested release
    HA_URL=http://127.0.0.1:8123 HA_TOKEN=... python scripts/record_fixtures.py   # any running HA

Writes homeiq_pipeline/demo/data/ha-<version>.json: {"ha_version", "recorded_at", "results":
{command: result}} for get_config and every command a snapshot uses. Re-run it when the pinned
HA version moves, so the fast tier and the real tier stay in step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeiq_pipeline.homeassistant import LIST_COMMANDS, HomeAssistantClient  # noqa: E402

DATA = ROOT / "homeiq_pipeline" / "demo" / "data"


def furnish(url: str, token: str) -> None:
    """Give a fresh demo HA what a lived-in home has and the demo lacks: floors, labels, devices
    and entities placed in areas (the demo assigns none)."""
    with HomeAssistantClient(url, token) as ha:
        ground = ha.command("config/floor_registry/create", name="Ground floor", level=0)["floor_id"]
        upstairs = ha.command("config/floor_registry/create", name="Upstairs", level=1, aliases=["first floor"])["floor_id"]
        favourite = ha.command("config/label_registry/create", name="Favourite", color="red", icon="mdi:star")["label_id"]
        battery = ha.command("config/label_registry/create", name="Battery powered", description="Check monthly")["label_id"]
        areas = {a["name"]: a["area_id"] for a in ha.command("config/area_registry/list")}
        for name, floor in (("Living Room", ground), ("Kitchen", ground), ("Bedroom", upstairs)):
            ha.command("config/area_registry/update", area_id=areas[name], floor_id=floor)
        devices = ha.command("config/device_registry/list")
        for index, device in enumerate(devices[:12]):
            area = list(areas.values())[index % len(areas)]
            labels = [favourite] if index % 4 == 0 else []
            ha.command("config/device_registry/update", device_id=device["id"], area_id=area, labels=labels)
        entities = ha.command("config/entity_registry/list")
        for entity in entities[:3]:  # entities placed in an area of their own, overriding their device's
            ha.command("config/entity_registry/update", entity_id=entity["entity_id"], area_id=areas["Kitchen"])
        for entity in entities[3:6]:
            ha.command("config/entity_registry/update", entity_id=entity["entity_id"], labels=[battery, favourite])


def record(url: str, token: str) -> dict:
    with HomeAssistantClient(url, token) as client:
        config = client.command("get_config")
        if config.get("state") != "RUNNING":
            raise SystemExit(f"Home Assistant is {config.get('state')}, not RUNNING: wait and retry")
        results = {"get_config": config}
        results.update({command: client.command(command) for command in LIST_COMMANDS.values()})
    recording = {"ha_version": config["version"], "recorded_at": datetime.now(UTC).isoformat(), "results": results}
    # The recording machine's paths mean nothing elsewhere.
    text = json.dumps(recording, ensure_ascii=False).replace(config.get("config_dir") or "\0", "/config")
    return json.loads(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-real-ha", action="store_true", help="install and start a real HA for this")
    parser.add_argument("--ha-version", default=None, help="with --start-real-ha: which release (default 2025.4.4)")
    parser.add_argument("--output", type=Path, help="default: homeiq_pipeline/demo/data/ha-<version>.json")
    args = parser.parse_args()
    if args.start_real_ha:
        import real_ha

        version = args.ha_version or real_ha.HA_VERSION
        with tempfile.TemporaryDirectory(prefix="homeiq-record-") as config_dir:
            hass = real_ha.ensure_venv(real_ha.default_venv(version), ha_version=version)
            with real_ha.RealHomeAssistant(hass, Path(config_dir)) as server:
                furnish(server.url, server.token)
                recording = record(server.url, server.token)
    else:
        if args.ha_version:
            parser.error("--ha-version needs --start-real-ha (a running HA has its own version)")
        url, token = os.environ.get("HA_URL"), os.environ.get("HA_TOKEN")
        if not url or not token:
            parser.error("set HA_URL and HA_TOKEN, or pass --start-real-ha")
        recording = record(url, token)
    output = args.output or DATA / f"ha-{recording['ha_version']}.json"
    output.write_text(json.dumps(recording, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {command: len(result) for command, result in recording["results"].items() if isinstance(result, list)}
    print(f"recorded Home Assistant {recording['ha_version']} into {output}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
