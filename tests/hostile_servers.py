"""Servers that misbehave below the Home Assistant protocol, for fault tests: each follows a script
of raw socket steps (a real websocket handshake, hand-made frames, silence, garbage, a close in the
middle of a frame). On 127.0.0.1 only; one thread per server, stopped by the context manager.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
TEXT, CLOSE = 0x1, 0x8


def frame(payload: bytes | str, *, opcode: int = TEXT, claimed_length: int | None = None, fin: bool = True) -> bytes:
    """A server-to-client websocket frame (unmasked). `claimed_length` lies about the payload size."""
    data = payload.encode() if isinstance(payload, str) else payload
    length = len(data) if claimed_length is None else claimed_length
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([length])
    elif length < 2**16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + data


def message(value: Any) -> bytes:
    return frame(json.dumps(value))


AUTH_REQUIRED = message({"type": "auth_required", "ha_version": "2025.4.4"})
AUTH_OK = message({"type": "auth_ok", "ha_version": "2025.4.4"})


@dataclass(frozen=True)
class Step:
    """One step of a script: "handshake", "send" (data), "receive" (one client frame), "silence"
    (hold the connection open and answer nothing, except the client's close frame, so a client
    that gives up is not kept waiting), or "close" (drop the TCP connection at once)."""

    action: str
    data: bytes = b""


HANDSHAKE = Step("handshake")
RECEIVE = Step("receive")
SILENCE = Step("silence")
CLOSE_NOW = Step("close")


def send(data: bytes) -> Step:
    return Step("send", data)


# After the handshake, everything a client needs before its first real command: auth, then the
# answer to `supported_features` (id 1).
AUTHENTICATED = (
    HANDSHAKE, send(AUTH_REQUIRED), RECEIVE, send(AUTH_OK), RECEIVE,
    send(message({"id": 1, "type": "result", "success": True, "result": None})),
)


@contextmanager
def scripted_server(steps: Sequence[Step]) -> Iterator[str]:
    """Serve `steps` to every connection; yields the server's http:// URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_run, args=(connection, steps, stop), daemon=True).start()

    thread = threading.Thread(target=serve, name="hostile-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def _run(connection: socket.socket, steps: Sequence[Step], stop: threading.Event) -> None:
    connection.settimeout(0.2)
    try:
        for step in steps:
            if step.action == "handshake":
                _handshake(connection, stop)
            elif step.action == "send":
                connection.sendall(step.data)
            elif step.action == "receive":
                _receive_frame(connection, stop)
            elif step.action == "silence":
                _ignore_until_closed(connection, stop)
            elif step.action == "close":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
        else:  # a script that ends keeps the connection until the client goes
            while not stop.is_set() and _read(connection, 1, stop) != b"":
                pass
    except OSError:
        pass
    finally:
        connection.close()


def _read(connection: socket.socket, size: int, stop: threading.Event) -> bytes:
    while not stop.is_set():
        try:
            return connection.recv(size)
        except TimeoutError:
            continue
    return b""


def _read_exactly(connection: socket.socket, size: int, stop: threading.Event) -> bytes:
    data = b""
    while len(data) < size:
        chunk = _read(connection, size - len(data), stop)
        if not chunk:
            raise OSError("client went away")
        data += chunk
    return data


def _handshake(connection: socket.socket, stop: threading.Event) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = _read(connection, 4096, stop)
        if not chunk:
            raise OSError("client went away")
        request += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID.encode()).digest())
    connection.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _ignore_until_closed(connection: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        opcode, _ = _receive_frame(connection, stop)
        if opcode == CLOSE:
            connection.sendall(frame(b"", opcode=CLOSE))
            return


def _receive_frame(connection: socket.socket, stop: threading.Event) -> tuple[int, bytes]:
    """One (masked) client frame: its opcode and payload."""
    head = _read_exactly(connection, 2, stop)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exactly(connection, 2, stop))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exactly(connection, 8, stop))[0]
    mask = _read_exactly(connection, 4, stop) if head[1] & 0x80 else b"\0\0\0\0"
    payload = _read_exactly(connection, length, stop)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
