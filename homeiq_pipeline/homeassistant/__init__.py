"""Home Assistant websocket client: connect, authenticate, commands, typed errors, snapshots."""

from ..snapshot import LIST_COMMANDS, Snapshot
from .client import DEFAULT_MAX_FRAME_SIZE, DEFAULT_TIMEOUT, HomeAssistantClient, websocket_url
from .errors import (
    AuthenticationFailed,
    CannotConnect,
    Cause,
    CertificateNotTrusted,
    CommandFailed,
    FrameTooLarge,
    HomeAssistantError,
    HomeAssistantStarting,
    ProtocolError,
    RequestTimeout,
)
from .snapshot import fetch_snapshot

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_TIMEOUT",
    "LIST_COMMANDS",
    "AuthenticationFailed",
    "CannotConnect",
    "Cause",
    "CertificateNotTrusted",
    "CommandFailed",
    "FrameTooLarge",
    "HomeAssistantClient",
    "HomeAssistantError",
    "HomeAssistantStarting",
    "ProtocolError",
    "RequestTimeout",
    "Snapshot",
    "fetch_snapshot",
    "websocket_url",
]
