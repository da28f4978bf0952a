"""Errors raised by the Home Assistant client, and the one classification callers act on.

Every failure names its cause so a person knows what to fix. None of them ever carries the access
token: messages are built from HA's replies and our own text.

Each error class says what can help (`cause`): a retry, or a person. Callers map the cause once,
to an exit code (CLI), a `dg.Failure(allow_retries=...)` (Dagster), or backoff against stopping
(the watcher), instead of each keeping its own `except` ladder.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Cause(StrEnum):
    """Why talking to Home Assistant failed, as a caller acts on it (the value is shown in the UI)."""

    UNAVAILABLE = "unavailable"  # unreachable, timed out or still starting: trying again later can help
    TOKEN_REJECTED = "authentication failed"  # a person must fix the token; retries feed HA's IP ban
    CERTIFICATE_NOT_TRUSTED = "certificate not trusted"  # a person must fix the CA bundle
    UNUSABLE_ANSWER = "unusable answer"  # HA answered something we cannot use (command error, frame, payload)

    @property
    def retry_can_help(self) -> bool:
        return self is Cause.UNAVAILABLE

    @property
    def settings_must_change(self) -> bool:
        """Only a person can fix it, and trying again would repeat the same login or handshake."""
        return self in (Cause.TOKEN_REJECTED, Cause.CERTIFICATE_NOT_TRUSTED)


class HomeAssistantError(Exception):
    """Base class: anything that went wrong talking to Home Assistant."""

    cause: ClassVar[Cause] = Cause.UNUSABLE_ANSWER


class CannotConnect(HomeAssistantError):
    """HA is unreachable: refused, DNS, TLS failure, or the connection dropped."""

    cause = Cause.UNAVAILABLE


class CertificateNotTrusted(CannotConnect):
    """HA's TLS certificate failed verification (unknown CA, wrong name, expired). Retrying will
    not help: configure the CA bundle (or, knowingly, turn verification off)."""

    cause = Cause.CERTIFICATE_NOT_TRUSTED


class AuthenticationFailed(HomeAssistantError):
    """HA rejected the access token (its own message is kept). Do not retry in a loop:
    repeated failures feed HA's IP ban."""

    cause = Cause.TOKEN_REJECTED


class HomeAssistantStarting(HomeAssistantError):
    """HA answered but is not RUNNING yet, so its states would be incomplete."""

    cause = Cause.UNAVAILABLE

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

    cause = Cause.UNAVAILABLE


class FrameTooLarge(HomeAssistantError):
    """A websocket frame exceeded the configured maximum size."""


class ProtocolError(HomeAssistantError):
    """HA (or whatever answered) sent something the protocol does not allow:
    garbage, an unexpected message type, or a payload of the wrong shape."""
