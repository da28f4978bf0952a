"""A small synchronous client for Home Assistant's websocket API.

One connection, authenticated once, commands answered in order of their ids, and subscriptions
whose events are read with `receive_event`. Built on `websocket-client`; it knows nothing of
databases or Dagster.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websocket
from websocket._abnf import frame_buffer

from .errors import (
    AuthenticationFailed,
    CannotConnect,
    CertificateNotTrusted,
    CommandFailed,
    FrameTooLarge,
    HomeAssistantError,
    ProtocolError,
    RequestTimeout,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# Large homes send 5-25 MB registry frames; stay far above that by default.
DEFAULT_MAX_FRAME_SIZE = 64 * MiB
DEFAULT_TIMEOUT = 30.0


def websocket_url(url: str) -> str:
    """Turn `http(s)://host:port` or `ws(s)://host:port/api/websocket` into the websocket URL."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(
            f"not a Home Assistant URL: {url!r} (expected http(s)://host:8123 or ws(s)://host:8123/api/websocket)"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/api/websocket"):
        path += "/api/websocket"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class _LimitedFrameBuffer(frame_buffer):
    """websocket-client's frame reader, refusing a frame by its header before reading it."""

    def __init__(self, recv_fn: Any, max_size: int) -> None:
        # UTF-8 is validated by our own (C-speed) decode, not websocket-client's pure Python one.
        super().__init__(recv_fn, skip_utf8_validation=True)
        self.max_size = max_size

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > self.max_size:
            raise FrameTooLarge(
                f"Home Assistant sent a {self.length / MiB:.1f} MiB websocket frame, more than the "
                f"configured maximum of {self.max_size / MiB:.1f} MiB; raise the maximum frame size"
            )


class HomeAssistantClient:
    """A connection to one Home Assistant. Use as a context manager:

    >>> with HomeAssistantClient("http://127.0.0.1:8123", token) as ha:   # doctest: +SKIP
    ...     ha.command("get_config")
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        if not token:
            raise ValueError("a Home Assistant access token is required")
        self.url = websocket_url(url)
        self._token = token
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.ca_bundle = ca_bundle
        self.max_frame_size = max_frame_size
        self.ha_version: str | None = None
        self._ws: websocket.WebSocket | None = None
        self._next_id = 1
        self._pending: deque[dict[str, Any]] = deque()
        self._events: deque[dict[str, Any]] = deque()  # event messages that arrived while awaiting a reply
        self.subscriptions: dict[int, str] = {}  # message id -> what it subscribed to

    def __repr__(self) -> str:  # never show the token
        return f"HomeAssistantClient(url={self.url!r}, connected={self._ws is not None})"

    # -- connection -------------------------------------------------------------------------

    def __enter__(self) -> HomeAssistantClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the websocket and authenticate."""
        ws = websocket.WebSocket(sslopt=self._sslopt(), skip_utf8_validation=True)
        ws.frame_buffer = _LimitedFrameBuffer(ws.frame_buffer.recv, self.max_frame_size)
        self._ws = ws
        try:
            with self._errors_named("connecting"):
                ws.connect(self.url, timeout=self.timeout, suppress_origin=True)
            self._authenticate()
            # Let HA batch messages into JSON arrays, as its own frontend does.
            self.command("supported_features", features={"coalesce_messages": 1})
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        ws, self._ws = self._ws, None
        self._pending.clear()
        self._events.clear()
        self.subscriptions.clear()
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # closing a broken socket must not hide the real error
                log.debug("error while closing the websocket", exc_info=True)
            finally:
                ws.shutdown()  # close() skips the socket when HA already sent its close frame

    def _sslopt(self) -> dict[str, Any]:
        if not self.url.startswith("wss://"):
            return {}
        context = ssl.create_default_context(cafile=self.ca_bundle)
        if not self.verify_tls:
            log.warning(
                "TLS certificate verification is DISABLED for %s: the connection can be "
                "intercepted. Prefer a CA bundle (ca_bundle) for self-signed certificates.",
                self.url,
            )
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return {"context": context}

    def _authenticate(self) -> None:
        hello = self._receive_message(time.monotonic() + self.timeout, "waiting for auth_required")
        if hello.get("type") != "auth_required":
            raise ProtocolError(f"expected auth_required from Home Assistant, got {hello.get('type')!r}")
        self._send({"type": "auth", "access_token": self._token})
        reply = self._receive_message(time.monotonic() + self.timeout, "waiting for auth_ok")
        if reply.get("type") == "auth_invalid":
            raise AuthenticationFailed(
                "Home Assistant rejected the access token: "
                f"{reply.get('message') or 'no reason given'} (check HA_TOKEN; repeated failures "
                "can get this address banned by HA)"
            )
        if reply.get("type") != "auth_ok":
            raise ProtocolError(f"expected auth_ok from Home Assistant, got {reply.get('type')!r}")
        self.ha_version = reply.get("ha_version") or hello.get("ha_version")
        log.info("authenticated to Home Assistant %s at %s", self.ha_version, self.url)

    # -- commands ---------------------------------------------------------------------------

    def command(self, command_type: str, **payload: Any) -> Any:
        """Send one command and return its `result`; raise `CommandFailed` on success=false."""
        return self._result(command_type, self._request(command_type, payload))

    def subscribe(self, command_type: str, **payload: Any) -> int:
        """Start a subscription (`subscribe_events` with an `event_type`, `config_entries/subscribe`)
        and return its id, which its event messages carry; read them with `receive_event`."""
        reply = self._request(command_type, payload)
        self._result(command_type, reply)
        subscription_id = int(reply["id"])
        self.subscriptions[subscription_id] = payload.get("event_type") or command_type
        return subscription_id

    def receive_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event message (`{"id", "type": "event", "event"}`) of a subscription, or None
        if none arrives within `timeout` seconds. Reading also answers HA's websocket pings, so a
        subscriber must keep calling this. A dropped connection raises `CannotConnect`."""
        deadline = time.monotonic() + timeout
        while True:
            if self._events:
                return self._events.popleft()
            if self._pending:
                self._keep_if_event(self._pending.popleft())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pending.extend(self._receive_frame(deadline, "waiting for events", idle_ok=True))

    def _result(self, command_type: str, reply: dict[str, Any]) -> Any:
        if reply.get("type") != "result":
            raise ProtocolError(f"expected a result for {command_type!r}, got {reply.get('type')!r}")
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise CommandFailed(command_type, str(error.get("code")), str(error.get("message")))
        return reply.get("result")

    def ping(self) -> float:
        """Round trip of HA's `ping` command, in seconds."""
        started = time.monotonic()
        reply = self._request("ping", {})
        if reply.get("type") != "pong":
            raise ProtocolError(f"expected pong, got {reply.get('type')!r}")
        return time.monotonic() - started

    def _request(self, command_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            raise CannotConnect("not connected to Home Assistant")
        message_id = self._next_id
        self._next_id += 1  # ids must strictly increase per connection
        self._send({**payload, "id": message_id, "type": command_type})
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive_message(deadline, f"waiting for the answer to {command_type!r}")
            if message.get("id") == message_id:
                return message
            self._keep_if_event(message)

    def _keep_if_event(self, message: dict[str, Any]) -> None:
        if message.get("type") == "event" and message.get("id") in self.subscriptions:
            self._events.append(message)
        else:
            log.debug("ignoring message %s of type %s", message.get("id"), message.get("type"))

    # -- transport --------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        with self._errors_named("sending"):
            self._ws.send(json.dumps(message))

    def _receive_message(self, deadline: float, doing: str) -> dict[str, Any]:
        while not self._pending:
            self._pending.extend(self._receive_frame(deadline, doing))
        return self._pending.popleft()

    def _receive_frame(self, deadline: float, doing: str, *, idle_ok: bool = False) -> list[dict[str, Any]]:
        """One frame's messages. With `idle_ok`, silence until `deadline` returns [] and keeps the
        connection (websocket-client resumes a partly read frame on the next call)."""
        if self._ws is None:
            raise CannotConnect(f"not connected to Home Assistant ({doing})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(f"Home Assistant did not answer within {self.timeout:g} s ({doing})")
        with self._errors_named(doing):
            self._ws.settimeout(remaining)
            try:
                # Control frames come back to us (websocket-client has already answered a ping), so
                # frequent pings cannot stretch a wait past its deadline.
                opcode, data = self._ws.recv_data(control_frame=True)
            except (websocket.WebSocketTimeoutException, TimeoutError):
                if idle_ok:
                    return []
                raise
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return []
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise CannotConnect(f"Home Assistant closed the connection ({doing}){_close_reason(data)}")
        try:
            decoded = json.loads(data, parse_constant=_not_json)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError(f"Home Assistant sent a frame that is not JSON ({doing}): {exc}") from exc
        if (b"\\ud" in data or b"\\uD" in data) and not _valid_unicode(decoded):  # HA never sends these
            raise ProtocolError(
                f"Home Assistant sent a string that is not valid Unicode (an unpaired surrogate) ({doing})"
            )
        # With coalesce_messages HA may send several messages as one JSON array.
        messages = decoded if isinstance(decoded, list) else [decoded]
        if not all(isinstance(m, dict) for m in messages):
            raise ProtocolError(f"Home Assistant sent a frame that is not a message object ({doing})")
        return messages

    @contextmanager
    def _errors_named(self, doing: str) -> Iterator[None]:
        """Turn transport exceptions into our typed errors, naming what we were doing."""
        try:
            yield
        except HomeAssistantError:
            raise
        except Exception as exc:
            error = _translate(exc, f"{self.url} ({doing})", self.timeout)
            if error is None:
                raise
            self.close()
            raise error from exc


# What OpenSSL says when a TLS handshake is answered in plain HTTP (it reads "HTTP/1.1 400" as a TLS
# record): WRONG_VERSION_NUMBER up to 3.1, RECORD_LAYER_FAILURE from 3.2 on.
PLAIN_HTTP_ANSWERS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})


def _translate(exc: Exception, where: str, timeout: float) -> HomeAssistantError | None:
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        return RequestTimeout(f"Home Assistant did not answer within {timeout:g} s: {where}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateNotTrusted(
            f"TLS handshake with Home Assistant failed: {where}: {exc} (set the CA bundle, HA_CA_BUNDLE, "
            "to the CA that signed HA's certificate)"
        )
    if isinstance(exc, ssl.SSLError):
        hint = " (the server may speak plain http: use http:// or ws://)" if exc.reason in PLAIN_HTTP_ANSWERS else ""
        return CannotConnect(f"TLS handshake with Home Assistant failed: {where}: {exc}{hint}")
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return CannotConnect(
            f"{where} answered HTTP {exc.status_code} instead of a websocket: is this the Home Assistant URL?"
        )
    if isinstance(exc, (ConnectionRefusedError, websocket.WebSocketAddressException)):
        return CannotConnect(f"cannot reach Home Assistant at {where}: {exc}")
    if isinstance(exc, (websocket.WebSocketConnectionClosedException, ConnectionError)):
        return CannotConnect(f"the connection to Home Assistant was lost: {where}")
    if isinstance(exc, OSError):
        return CannotConnect(f"cannot reach Home Assistant at {where}: {exc}")
    if isinstance(exc, websocket.WebSocketException):
        return ProtocolError(f"websocket protocol error from {where}: {exc}")
    return None


def _not_json(constant: str) -> Any:
    """NaN and Infinity are not JSON (HA's encoder never writes them); stored, they would change."""
    raise ValueError(f"{constant} is not a JSON value")


def _valid_unicode(decoded: Any) -> bool:
    """False if an escaped surrogate decoded alone: such a string cannot be stored as UTF-8."""
    try:
        json.dumps(decoded, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _close_reason(data: bytes) -> str:
    if len(data) < 2:
        return ""
    code = int.from_bytes(data[:2], "big")
    reason = data[2:].decode("utf-8", "replace")
    return f": close code {code}" + (f", {reason}" if reason else "")
