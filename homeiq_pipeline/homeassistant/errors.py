"""Errors raised by the Home Assistant client.

Every failure names its cause so a person knows what to fix. None of them ever
carries the access token: messages are built from HA's replies and our own text.
"""

from __future__ import annotations


class HomeAssistantError(Exception):
    """Base class: anything that went wrong talking to Home Assistant."""


class CannotConnect(HomeAssistantError):
    """HA is unreachable: refused, DNS, TLS failure, or the connection dropped."""


class CertificateNotTrusted(CannotConnect):
    """HA's TLS certificate failed verification (unknown CA, wrong name, expired). Retrying will
    not help: configure the CA bundle (or, knowingly, turn verification off)."""


class AuthenticationFailed(HomeAssistantError):
    """HA rejected the access token (its own message is kept). Do not retry in a loop:
    repeated failures feed HA's IP ban."""


class HomeAssistantStarting(HomeAssistantError):
    """HA answered but is not RUNNING yet, so its states would be incomplete."""

    def __init__(self, state: str) -> None:
        super().__init__(
            f"Home Assistant is still starting (its state is {state!r}, not 'RUNNING'); "
            "a snapshot now would be incomplete, try again shortly"
        )
        self.state = state


class CommandFailed(HomeAssistantError):
    """HA answered a command with success=false."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"Home Assistant command {command!r} failed: {code}: {message}")
        self.command = command
        self.code = code
        self.message = message


class RequestTimeout(HomeAssistantError):
    """HA did not answer within the timeout."""


class FrameTooLarge(HomeAssistantError):
    """A websocket frame exceeded the configured maximum size."""


class ProtocolError(HomeAssistantError):
    """HA (or whatever answered) sent something the protocol does not allow:
    garbage, an unexpected message type, or a payload of the wrong shape."""
