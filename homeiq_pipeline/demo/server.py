"""A small Home Assistant websocket server that serves recorded data.

It speaks HA's real protocol (auth_required / auth / auth_ok / auth_invalid, increasing ids,
result and error replies, coalesced JSON arrays, ping/pong) and serves registries recorded from
a real Home Assistant (see `scripts/record_fixtures.py`). Tests use it for fast protocol and fault
tests; the same assertions run against a real HA in the real tier. It is NOT a Home Assistant:
anything that shows its data must say that it is demo data.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

RECORDING = "ha-2025.4.4.json"
DEMO_LOCATION_NAME = "DEMO - recorded Home Assistant demo data, not a real home"
DEMO_TOKEN = "demo-token-not-a-secret"


def demo_home_assistant(host: str = "127.0.0.1", port: int = 0) -> FakeHomeAssistant:
    """The labelled demo: the recording served with a location name that says it is a demo."""
    server = FakeHomeAssistant(token=DEMO_TOKEN, host=host, port=port)
    server.results["get_config"]["location_name"] = DEMO_LOCATION_NAME
    return server


def load_recording(name: str = RECORDING) -> dict[str, Any]:
    """The recorded answers of a real HA: {"ha_version": ..., "results": {command: result}}."""
    return json.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8"))


@dataclass
class Faults:
    """Ways to misbehave, for tests. Keys are command types."""

    fail: dict[str, tuple[str, str]] = field(default_factory=dict)  # reply success=false (code, message)
    drop: set[str] = field(default_factory=set)  # close the connection instead of answering
    hang: set[str] = field(default_factory=set)  # never answer
    raw: dict[str, bytes | str] = field(default_factory=dict)  # answer with this frame instead


class FakeHomeAssistant:
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
    ) -> None:
        recording = load_recording() if results is None else {"results": results}
        self.results: dict[str, Any] = copy.deepcopy(recording["results"])
        self.ha_version = ha_version or recording.get("ha_version") or self.results["get_config"]["version"]
        self.token = token
        self.coalesce = coalesce
        self.state = "RUNNING"
        self.faults = Faults()
        self.lock = threading.Lock()
        self.commands_seen: list[str] = []
        self.auth_failures = 0
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeHomeAssistant:
        self._server = serve(
            self._handle,
            self._host,
            self._port,
            process_request=_only_websocket_path,
            max_size=16 * 1024 * 1024,
            compression=None,  # HA's aiohttp server does not compress either
            ssl=self._ssl_context,
        )
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ha", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHomeAssistant:
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

    def _session(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "auth_required", "ha_version": self.ha_version}))
        auth = json.loads(connection.recv())
        if auth.get("type") != "auth" or auth.get("access_token") != self.token:
            self.auth_failures += 1
            connection.send(json.dumps({"type": "auth_invalid", "message": "Invalid access token or password"}))
            connection.close()
            return
        connection.send(json.dumps({"type": "auth_ok", "ha_version": self.ha_version}))
        coalesce = False
        last_id = 0
        while True:
            message = json.loads(connection.recv())
            command, message_id = message.get("type"), message.get("id")
            with self.lock:
                self.commands_seen.append(command)
                reply = self._answer(command, message)
                faults = copy.copy(self.faults)
            if not isinstance(message_id, int) or message_id <= last_id:
                reply = _error("id_reuse", "Identifier values have to increase.")
            last_id = message_id if isinstance(message_id, int) else last_id
            if command in faults.hang:
                continue
            if command in faults.drop:
                connection.close()
                return
            if command in faults.raw:
                connection.send(faults.raw[command])
                continue
            if command in faults.fail:
                reply = _error(*faults.fail[command])
            if command == "supported_features":
                coalesce = self.coalesce and bool(message.get("features", {}).get("coalesce_messages"))
            reply["id"] = message_id
            # HA sends the result already serialised; so do we, as one frame.
            connection.send(json.dumps([reply] if coalesce else reply))

    def _answer(self, command: str, message: dict[str, Any]) -> dict[str, Any]:
        if command == "ping":
            return {"type": "pong"}
        if command == "supported_features":
            return _result(None)
        if command == "get_config":
            return _result({**self.results["get_config"], "state": self.state})
        if command in self.results:
            return _result(self.results[command])
        return _error("unknown_command", "Unknown command.")


def _result(result: Any) -> dict[str, Any]:
    return {"type": "result", "success": True, "result": result}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "result", "success": False, "error": {"code": code, "message": message}}


def _only_websocket_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/api/websocket":
        return None
    return connection.respond(404, "Not Found\n")
