"""A small Home Assistant websocket server that serves recorded data.

It speaks HA's real protocol (auth_required / auth / auth_ok / auth_invalid, increasing ids,
result and error replies, coalesced JSON arrays, ping/pong) and serves registries recorded from
a real Home Assistant (see `scripts/record_fixtures.py`). It also takes a few of HA's own registry
commands (`config/device_registry/update`, `input_boolean/create`, `config/area_registry/create`,
`config_entries/disable`, ... see `CHANGE_COMMANDS`) and pushes the events HA would push to
`subscribe_events` / `config_entries/subscribe` subscribers, so live mode can be shown and tested. The fast
tests build on it (`tests/fake_ha.py` adds misbehaviour through `before_reply`); the same assertions run
against a real HA in the real tier. It is NOT a Home Assistant: anything that shows its data must say that it
is demo data.
"""

from __future__ import annotations

import copy
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Self

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

RECORDING = "ha-2025.4.4.json"
DEMO_LOCATION_NAME = "DEMO - recorded Home Assistant demo data, not a real home"
DEMO_TOKEN = "demo-token-not-a-secret"


def demo_home_assistant(host: str = "127.0.0.1", port: int = 0) -> DemoHomeAssistant:
    """The labelled demo: the recording served with a location name that says it is a demo."""
    server = DemoHomeAssistant(token=DEMO_TOKEN, host=host, port=port)
    server.results["get_config"]["location_name"] = DEMO_LOCATION_NAME
    return server


def load_recording(name: str = RECORDING) -> dict[str, Any]:
    """The recorded answers of a real HA: {"ha_version": ..., "results": {command: result}}."""
    return json.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8"))


class DemoHomeAssistant:
    """Serve `results` (command type -> result) on ws://127.0.0.1:PORT/api/websocket.

    Tests change `results` and `state` between syncs (under `lock`) to simulate HA changing.
    """

    def __init__(
        self,
        results: dict[str, Any] | None = None,
        *,
        token: str = "test-token",
        ha_version: str | None = None,
        coalesce: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = None,
    ) -> None:
        recording = load_recording() if results is None else {"results": results}
        self.results: dict[str, Any] = copy.deepcopy(recording["results"])
        self.ha_version = ha_version or recording.get("ha_version") or self.results["get_config"]["version"]
        self.token = token
        self.coalesce = coalesce
        self.state = "RUNNING"
        self.lock = threading.Lock()
        self.commands_seen: list[str] = []
        self.auth_failures = 0
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._ping_interval = ping_interval  # websocket pings, as HA's aiohttp heartbeat sends them
        self._ping_timeout = ping_interval if ping_timeout is None else ping_timeout  # for its pong
        # connection -> {subscription id: event type, or "config_entries/subscribe"}
        self._subscribers: dict[ServerConnection, dict[int, str]] = {}
        self.connections = 0  # authenticated sessions so far
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = serve(
            self._handle,
            self._host,
            self._port,
            process_request=_only_websocket_path,
            max_size=16 * 1024 * 1024,
            compression=None,  # HA's aiohttp server does not compress either
            ssl=self._ssl_context,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
        )
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-ha", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"{scheme}://{host}:{self._port}"

    # -- protocol ---------------------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        try:
            self._session(connection)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                self._subscribers.pop(connection, None)

    def _session(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "auth_required", "ha_version": self.ha_version}))
        auth = json.loads(connection.recv())
        if auth.get("type") != "auth" or auth.get("access_token") != self.token:
            self.auth_failures += 1
            connection.send(json.dumps({"type": "auth_invalid", "message": "Invalid access token or password"}))
            connection.close()
            return
        connection.send(json.dumps({"type": "auth_ok", "ha_version": self.ha_version}))
        with self.lock:
            self.connections += 1
        coalesce = False
        last_id = 0
        while True:
            message = json.loads(connection.recv())
            command, message_id = message.get("type"), message.get("id")
            events: list[tuple[str, Any]] = []
            with self.lock:
                self.commands_seen.append(command)
                reply = self._answer(command, message, events)
                if command in SUBSCRIBE_COMMANDS and reply.get("success") and isinstance(message_id, int):
                    kind = message.get("event_type", "*") if command == "subscribe_events" else command
                    self._subscribers.setdefault(connection, {})[message_id] = kind
                if command == "unsubscribe_events":
                    self._subscribers.get(connection, {}).pop(message.get("subscription"), None)
            if not isinstance(message_id, int) or message_id <= last_id:
                reply = _error("id_reuse", "Identifier values have to increase.")
            last_id = message_id if isinstance(message_id, int) else last_id
            sent = self.before_reply(connection, command, reply)
            if sent is None:
                if connection.state is State.OPEN:
                    continue
                return  # the hook closed the connection
            reply = sent
            if command == "supported_features":
                coalesce = self.coalesce and bool(message.get("features", {}).get("coalesce_messages"))
            reply["id"] = message_id
            # HA sends the result already serialised; so do we, as one frame.
            connection.send(json.dumps([reply] if coalesce else reply))
            if command == "config_entries/subscribe" and reply.get("success"):
                # Right after the result, HA sends the current entries with type None.
                with self.lock:
                    current = [{"type": None, "entry": e} for e in self.results["config_entries/get"]]
                connection.send(json.dumps({"id": message_id, "type": "event", "event": current}))
            self._publish(events)

    def before_reply(self, connection: ServerConnection, command: str, reply: dict[str, Any]) -> dict[str, Any] | None:
        """Called just before `reply` (to `command`) is sent: return the reply to send, or None when the
        message was handled here (nothing is sent, and the command's events are not pushed)."""
        return reply

    # -- pushing events ---------------------------------------------------------------------

    def _publish(self, events: list[tuple[str, Any]]) -> None:
        """Send each (event type, payload) to every matching subscriber, as HA does."""
        if not events:
            return
        with self.lock:
            targets = [(c, dict(subs)) for c, subs in self._subscribers.items()]
        for connection, subscriptions in targets:
            for event_type, payload in events:
                for subscription_id, kind in subscriptions.items():
                    if kind == event_type == "config_entries/subscribe":
                        event: Any = payload
                    elif kind in (event_type, "*"):
                        event = {
                            "event_type": event_type,
                            "data": payload,
                            "origin": "LOCAL",
                            "time_fired": _now_iso(),
                            "context": {"id": _ulid(), "parent_id": None, "user_id": None},
                        }
                    else:
                        continue
                    try:
                        connection.send(json.dumps({"id": subscription_id, "type": "event", "event": event}))
                    except ConnectionClosed:
                        break

    def change(self, command: str, **payload: Any) -> Any:
        """Make a change as if through HA's websocket command `command` (see `CHANGE_COMMANDS`),
        push its events to subscribers, and return HA's result; raises ValueError on an error."""
        events: list[tuple[str, Any]] = []
        with self.lock:
            reply = self._answer(command, {**payload, "type": command}, events)
        self._publish(events)
        if not reply.get("success"):
            raise ValueError(f"{command}: {reply['error']['code']}: {reply['error']['message']}")
        return reply.get("result")

    def _answer(self, command: str, message: dict[str, Any], events: list[tuple[str, Any]]) -> dict[str, Any]:
        if command in CHANGE_COMMANDS:
            try:
                return _result(CHANGE_COMMANDS[command](self, message, events))
            except KeyError as exc:
                return _error("not_found", f"not found: {exc}")
        if command in SUBSCRIBE_COMMANDS or command == "unsubscribe_events":
            return _result(None)
        if command == "ping":
            return {"type": "pong"}
        if command == "supported_features":
            return _result(None)
        if command == "get_config":
            return _result({**self.results["get_config"], "state": self.state})
        if command in self.results:
            return _result(self.results[command])
        return _error("unknown_command", "Unknown command.")


# -- HA's registry commands, as far as the demo and the tests need them -----------------------
# Each changes `results` (the caller holds the lock) and lists the events HA would fire.

Events = list[tuple[str, Any]]
SUBSCRIBE_COMMANDS = ("subscribe_events", "config_entries/subscribe")


def _find(items: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    for item in items:
        if item.get(key) == value:
            return item
    raise KeyError(f"{key} {value!r}")


def _device_update(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    device = _find(ha.results["config/device_registry/list"], "id", msg["device_id"])
    fields = {k: v for k, v in msg.items() if k in ("area_id", "name_by_user", "disabled_by", "labels")}
    changes = {k: device.get(k) for k, v in fields.items() if device.get(k) != v}
    device.update(fields, modified_at=time.time())
    if changes:
        events.append(("device_registry_updated", {"action": "update", "device_id": device["id"], "changes": changes}))
    return copy.deepcopy(device)


def _entity_update(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    entry = _find(ha.results["config/entity_registry/list"], "entity_id", msg["entity_id"])
    old_id = entry["entity_id"]
    fields = {k: v for k, v in msg.items() if k in ("name", "area_id", "disabled_by", "hidden_by", "labels", "icon")}
    if msg.get("new_entity_id"):
        fields["entity_id"] = msg["new_entity_id"]
    changes = {k: entry.get(k) for k, v in fields.items() if entry.get(k) != v}
    entry.update(fields, modified_at=time.time())
    states = ha.results["get_states"]
    if entry.get("disabled_by"):
        states[:] = [s for s in states if s["entity_id"] != old_id]
    elif old_id != entry["entity_id"]:
        for state in states:
            if state["entity_id"] == old_id:
                state["entity_id"] = entry["entity_id"]
    if changes:
        data = {"action": "update", "entity_id": entry["entity_id"], "changes": changes}
        if old_id != entry["entity_id"]:
            data["old_entity_id"] = old_id
        events.append(("entity_registry_updated", data))
    return {"entity_entry": copy.deepcopy(entry)}


def _entity_remove(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    entry = _find(ha.results["config/entity_registry/list"], "entity_id", msg["entity_id"])
    ha.results["config/entity_registry/list"].remove(entry)
    ha.results["get_states"][:] = [s for s in ha.results["get_states"] if s["entity_id"] != entry["entity_id"]]
    events.append(("entity_registry_updated", {"action": "remove", "entity_id": entry["entity_id"]}))
    return None


def _input_boolean_create(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    name = str(msg["name"])
    helper_id = _slug(name)
    entity_id = f"input_boolean.{helper_id}"
    now = time.time()
    ha.results["config/entity_registry/list"].append(
        {
            "area_id": None,
            "categories": {},
            "config_entry_id": None,
            "config_subentry_id": None,
            "created_at": now,
            "device_id": None,
            "disabled_by": None,
            "entity_category": None,
            "entity_id": entity_id,
            "has_entity_name": False,
            "hidden_by": None,
            "icon": None,
            "id": _ulid().lower(),
            "labels": [],
            "modified_at": now,
            "name": None,
            "options": {},
            "original_name": name,
            "platform": "input_boolean",
            "translation_key": None,
            "unique_id": helper_id,
        }
    )
    stamp = _now_iso()
    ha.results["get_states"].append(
        {
            "entity_id": entity_id,
            "state": "off",
            "attributes": {"editable": True, "friendly_name": name},
            "last_changed": stamp,
            "last_reported": stamp,
            "last_updated": stamp,
            "context": {"id": _ulid(), "parent_id": None, "user_id": None},
        }
    )
    events.append(("entity_registry_updated", {"action": "create", "entity_id": entity_id}))
    return {"id": helper_id, "name": name}


def _input_boolean_delete(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    entry = _find(ha.results["config/entity_registry/list"], "unique_id", msg["input_boolean_id"])
    return _entity_remove(ha, {"entity_id": entry["entity_id"]}, events)


def _area_create(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    now = time.time()
    area = {
        "aliases": [],
        "area_id": _slug(str(msg["name"])),
        "floor_id": msg.get("floor_id"),
        "humidity_entity_id": None,
        "icon": None,
        "labels": [],
        "name": msg["name"],
        "picture": None,
        "temperature_entity_id": None,
        "created_at": now,
        "modified_at": now,
    }
    ha.results["config/area_registry/list"].append(area)
    events.append(("area_registry_updated", {"action": "create", "area_id": area["area_id"]}))
    return copy.deepcopy(area)


def _area_delete(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    area = _find(ha.results["config/area_registry/list"], "area_id", msg["area_id"])
    ha.results["config/area_registry/list"].remove(area)
    events.append(("area_registry_updated", {"action": "remove", "area_id": area["area_id"]}))
    return None


def _config_entry_disable(ha: DemoHomeAssistant, msg: dict[str, Any], events: Events) -> Any:
    """Like HA: the entry is unloaded (or set up again), and its entities are disabled by it."""
    entry = _find(ha.results["config_entries/get"], "entry_id", msg["entry_id"])
    disabled_by = msg.get("disabled_by")
    entry.update(disabled_by=disabled_by, state="not_loaded" if disabled_by else "loaded", modified_at=time.time())
    events.append(("config_entries/subscribe", [{"type": "updated", "entry": copy.deepcopy(entry)}]))
    for entity in ha.results["config/entity_registry/list"]:
        if entity.get("config_entry_id") == entry["entry_id"] and entity.get("disabled_by") in (None, "config_entry"):
            wanted = "config_entry" if disabled_by else None
            if entity.get("disabled_by") != wanted:
                _entity_update(ha, {"entity_id": entity["entity_id"], "disabled_by": wanted}, events)
    return {"require_restart": False}


CHANGE_COMMANDS: dict[str, Callable[[DemoHomeAssistant, dict[str, Any], Events], Any]] = {
    "config/device_registry/update": _device_update,
    "config/entity_registry/update": _entity_update,
    "config/entity_registry/remove": _entity_remove,
    "input_boolean/create": _input_boolean_create,
    "input_boolean/delete": _input_boolean_delete,
    "config/area_registry/create": _area_create,
    "config/area_registry/delete": _area_delete,
    "config_entries/disable": _config_entry_disable,
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unnamed"


def _ulid() -> str:
    return "".join(random.choices("0123456789ABCDEFGHJKMNPQRSTVWXYZ", k=26))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _result(result: Any) -> dict[str, Any]:
    return {"type": "result", "success": True, "result": result}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "result", "success": False, "error": {"code": code, "message": message}}


def _only_websocket_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/api/websocket":
        return None
    return connection.respond(404, "Not Found\n")
