"""The demo Home Assistant with ways to misbehave, for the fault tests."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.server import ServerConnection

from homeiq_pipeline.demo.server import DemoHomeAssistant, _error


@dataclass
class Faults:
    """Ways to misbehave. Keys are command types."""

    fail: dict[str, tuple[str, str]] = field(default_factory=dict)  # reply success=false (code, message)
    drop: set[str] = field(default_factory=set)  # close the connection instead of answering
    hang: set[str] = field(default_factory=set)  # never answer
    hold: dict[str, threading.Event] = field(default_factory=dict)  # answer once the event is set
    raw: dict[str, bytes | str] = field(default_factory=dict)  # answer with this frame instead


class FakeHomeAssistant(DemoHomeAssistant):
    """`DemoHomeAssistant` whose `faults` (changed by tests at any time) decide how each command is answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = Faults()

    def before_reply(self, connection: ServerConnection, command: str, reply: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            faults = copy.copy(self.faults)
        if command in faults.hold:
            faults.hold[command].wait()
        if command in faults.hang:
            return None
        if command in faults.drop:
            connection.close()
            return None
        if command in faults.raw:
            connection.send(faults.raw[command])
            return None
        if command in faults.fail:
            return _error(*faults.fail[command])
        return reply
