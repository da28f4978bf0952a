"""Trying an unreachable Home Assistant again within one run, with growing pauses, so that a run
which still fails says why in its first line (not Dagster's "Exceeded max_retries of 3")."""

import time
from collections.abc import Callable

import dagster as dg

from ...homeassistant import HomeAssistantClient, HomeAssistantError, Snapshot, fetch_snapshot


def fetch_trying_again(
    client: Callable[[], HomeAssistantClient],
    *,
    tries: int,
    first_pause: float,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """One snapshot, from up to `tries` connections while a retry can help (HA unreachable, timing
    out or starting), pausing `first_pause` seconds after the first failure and twice as long after
    each next one. Anything else (a rejected token, an untrusted certificate, an unusable answer)
    fails at once. Failing, it raises one `dg.Failure` whose description starts with the cause."""
    started = time.monotonic()
    for attempt in range(1, tries + 1):
        try:
            with client() as connected:
                return fetch_snapshot(connected)
        except HomeAssistantError as exc:
            if not exc.cause.retry_can_help or attempt == tries:
                raise _failure(exc, attempt, time.monotonic() - started) from None
            pause = first_pause * 2 ** (attempt - 1)
            log(f"try {attempt} of {tries} failed: {exc}; trying again in {pause:g} s")
            sleep(pause)
    raise AssertionError("unreachable: the last try returns or raises")


def _failure(exc: HomeAssistantError, tries: int, seconds: float) -> dg.Failure:
    # The cause chain is left out: the description already says everything it would, without a
    # second stack trace under it in the UI.
    description = f"{exc} ({tries} tries over {duration(seconds)})" if tries > 1 else str(exc)
    return dg.Failure(description, metadata={"cause": exc.cause.value, "tries": tries}, allow_retries=False)


def duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `1 min 44 s`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
