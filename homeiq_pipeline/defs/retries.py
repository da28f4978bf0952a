"""Trying again within one step, with growing pauses, so that a step which still fails says why in
its first line (not Dagster's "Exceeded max_retries of 3" over a chain of stack traces)."""

import time
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

T = TypeVar("T")


def trying_again(
    action: Callable[[], T],
    *,
    expected: tuple[type[Exception], ...],
    can_help: Callable[[Any], bool],
    metadata: Callable[[Any], dict[str, Any]],
    tries: int,
    first_pause: float,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`action()`, up to `tries` times while it raises one of the `expected` errors that another
    try `can_help` with, pausing `first_pause` seconds after the first failure and twice as long
    after each next one. Failing, it raises one `dg.Failure` whose description starts with the
    error's message, with the error's `metadata` and the number of tries."""
    started = time.monotonic()
    for attempt in range(1, tries + 1):
        try:
            return action()
        except expected as exc:
            if not can_help(exc) or attempt == tries:
                raise _failure(exc, attempt, time.monotonic() - started, metadata(exc)) from None
            pause = first_pause * 2 ** (attempt - 1)
            log(f"try {attempt} of {tries} failed: {exc}; trying again in {pause:g} s")
            sleep(pause)
    raise AssertionError("unreachable: the last try returns or raises")


def _failure(exc: Exception, tries: int, seconds: float, metadata: dict[str, Any]) -> dg.Failure:
    # The cause chain is left out: the description already says everything it would, without a
    # second stack trace under it in the UI.
    description = f"{exc} ({tries} tries over {duration(seconds)})" if tries > 1 else str(exc)
    return dg.Failure(description, metadata={**metadata, "tries": tries}, allow_retries=False)


def duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `1 min 44 s`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
