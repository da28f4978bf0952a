"""Trying an unreachable (or starting) Home Assistant again within one run: HA restarting is often brief."""

import time
from collections.abc import Callable

from ...homeassistant import HomeAssistantClient, HomeAssistantError, Snapshot, fetch_snapshot
from ..retries import trying_again


def fetch_trying_again(
    client: Callable[[], HomeAssistantClient],
    *,
    tries: int,
    first_pause: float,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """One snapshot, from up to `tries` connections while a retry can help (HA unreachable, timing
    out or starting). Anything else (a rejected token, an untrusted certificate, an unusable answer)
    fails at once. Failing, it raises one `dg.Failure` whose description starts with the cause."""

    def fetch() -> Snapshot:
        with client() as connected:
            return fetch_snapshot(connected)

    return trying_again(
        fetch,
        expected=(HomeAssistantError,),
        can_help=lambda exc: exc.cause.retry_can_help,
        metadata=lambda exc: {"cause": exc.cause.value},
        tries=tries,
        first_pause=first_pause,
        log=log,
        sleep=sleep,
    )
