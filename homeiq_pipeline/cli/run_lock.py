"""One `homeiq-pipeline run` per Dagster instance and per port: a second one is refused at once,
naming the first (its pid and URL), instead of starting a second daemon on the same DAGSTER_HOME
or a webserver that cannot bind.

The lock is a file in DAGSTER_HOME holding the pid and URL of the `run` that holds it, locked with
flock(2): the kernel releases it when that process ends, however it ends, so a crash leaves no
stale lock and a reused pid is never mistaken for a live `run`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "homeiq-run.lock"


class AlreadyRunning(Exception):
    """Another `run` holds this instance, or the port is taken; the message names it."""


@dataclass(frozen=True)
class Holder:
    """The `run` holding an instance's lock."""

    pid: int
    url: str
    home: Path

    def __str__(self) -> str:
        return f"pid {self.pid}, UI at {self.url}"


@contextmanager
def running_alone(home: Path, url: str, host: str, port: int, other_homes: Iterable[Path] = ()) -> Iterator[None]:
    """Hold `home`'s lock (naming this process and `url`) while the block runs, once `port` is free. Raises
    AlreadyRunning naming the `run` that holds `home` or the port (looked for in `other_homes`)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            first = holder(home)
            named = f" ({first})" if first else ""
            stop = f" (Ctrl-C in its terminal, or `kill {first.pid}`)" if first else ""
            raise AlreadyRunning(
                f"another `homeiq-pipeline run` is already running on DAGSTER_HOME={home}{named}: stop it first{stop}"
            ) from None
        lock.truncate(0)
        lock.write(json.dumps({"pid": os.getpid(), "url": url}))
        lock.flush()
        if port_in_use(host, port):
            # Ours is not among them: we hold its lock, so it names no one else.
            owner = next((h for h in map(holder, other_homes) if h and h.url.endswith(f":{port}")), None)
            user = f"another `homeiq-pipeline run` ({owner}, DAGSTER_HOME={owner.home})" if owner else "another program"
            raise AlreadyRunning(f"port {port} is already in use by {user}: stop it, or pick another with --port")
        yield


def holder(home: Path) -> Holder | None:
    """The live `run` holding `home`'s lock, if any."""
    path = home / LOCK_FILE
    try:
        with path.open() as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: its holder wrote who it is
                with suppress(ValueError, KeyError, TypeError):
                    written = json.loads(lock.read())
                    return Holder(int(written["pid"]), str(written["url"]), home)
            return None
    except FileNotFoundError:
        return None


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on `port` at `host` already: a test bind, with SO_REUSEADDR as
    the webserver binds (so connections of an earlier server in TIME_WAIT do not count)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False
