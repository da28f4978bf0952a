"""`homeiq-pipeline demo-server` and `demo-change`: the labelled demo Home Assistant on its own, and
changes to it through HA's own websocket commands (which the demo server implements)."""

from __future__ import annotations

import argparse
import signal
import threading

from .. import homeassistant as ha
from ..settings import Settings
from .exits import EXIT_CONFIG, EXIT_OK, FOR_CAUSE, fail

DEMO_CHANGES = ("rename-device", "add-entity", "remove-entity", "create-area", "disable-entry", "enable-entry")


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """The demo Home Assistant on its own (e.g. as a container of the compose demo profile)."""
    from ..demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN, demo_home_assistant

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with demo_home_assistant(host=args.host, port=args.port) as server:
        print(f"DEMO Home Assistant ({DEMO_LOCATION_NAME}) at {server.url}, token {DEMO_TOKEN!r}", flush=True)
        stopped.wait()
    return EXIT_OK


def change(args: argparse.Namespace, settings: Settings) -> int:
    from ..demo.server import DEMO_LOCATION_NAME, DEMO_TOKEN

    try:
        with ha.HomeAssistantClient(args.ha_url, DEMO_TOKEN) as client:
            if client.command("get_config").get("location_name") != DEMO_LOCATION_NAME:
                return fail(
                    EXIT_CONFIG, f"{args.ha_url} is not the demo Home Assistant: demo-change changes only the demo"
                )
            result = _apply(client, args)
    except ha.HomeAssistantError as exc:
        explained = {
            ha.Cause.TOKEN_REJECTED: f"{args.ha_url} rejected the demo token: is it the demo Home Assistant?",
            ha.Cause.UNAVAILABLE: f"{exc} (is `homeiq-pipeline run --demo` or `demo-server` running?)",
        }
        return fail(FOR_CAUSE[exc.cause], explained.get(exc.cause, str(exc)))
    print(result)
    return EXIT_OK


def _apply(client: ha.HomeAssistantClient, args: argparse.Namespace) -> str:
    value = args.value
    if args.change == "rename-device":
        device_id = args.device_id or client.command("config/device_registry/list")[0]["id"]
        client.command("config/device_registry/update", device_id=device_id, name_by_user=value)
        return f"device {device_id} is now named {value!r}"
    if args.change == "add-entity":
        helper = client.command("input_boolean/create", name=value)
        return f"added entity input_boolean.{helper['id']}"
    if args.change == "remove-entity":
        client.command("config/entity_registry/remove", entity_id=value)
        return f"removed entity {value}"
    if args.change == "create-area":
        area = client.command("config/area_registry/create", name=value)
        return f"created area {area['area_id']}"
    entries = client.command("config_entries/get")
    entry = next((e for e in entries if value in (e["entry_id"], e["domain"])), None)
    if entry is None:
        raise ha.CommandFailed("config_entries/disable", "not_found", f"no config entry {value!r}")
    disabled_by = "user" if args.change == "disable-entry" else None
    client.command("config_entries/disable", entry_id=entry["entry_id"], disabled_by=disabled_by)
    return f"config entry {entry['title']} ({entry['domain']}) {'disabled' if disabled_by else 'enabled'}"
