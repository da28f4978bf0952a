"""Exit codes, so scripts can tell a transient failure from one that needs a person, and the one
mapping from Home Assistant's failure causes to them."""

import contextlib
import os
import sys
from collections.abc import Iterable
from typing import TextIO

from ..homeassistant import Cause

EXIT_OK = 0
EXIT_CONFIG = 2  # missing or invalid settings, or HA's TLS certificate is not trusted (the CA bundle)
EXIT_UNAVAILABLE = 3  # unreachable, timed out or still starting: try again later
EXIT_AUTH = 4  # the token was rejected
EXIT_HA_ERROR = 5  # HA answered something we cannot use
EXIT_REFUSED = 6  # the data-loss guard refused the snapshot, or it could not be stored
EXIT_DATABASE = 7  # the database could not be opened or written
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_PIPE_CLOSED = 141  # stdout was closed (`| head`): what a shell shows for a process killed by SIGPIPE

FOR_CAUSE = {
    Cause.UNAVAILABLE: EXIT_UNAVAILABLE,
    Cause.TOKEN_REJECTED: EXIT_AUTH,
    Cause.CERTIFICATE_NOT_TRUSTED: EXIT_CONFIG,  # a setting (the CA bundle) must change
    Cause.UNUSABLE_ANSWER: EXIT_HA_ERROR,
}


def fail(code: int, message: str) -> int:
    _tell(f"homeiq-pipeline: {message}")
    return code


def warn(message: str) -> None:
    _tell(f"homeiq-pipeline: warning: {message}")


def _tell(line: str) -> None:
    """One line on stderr; a closed stderr (`2>&1 | head`) leaves nobody to tell, and is no error."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        devnull_stream(sys.stderr)


def devnull_stream(stream: TextIO) -> None:
    """Point `stream`'s descriptor at /dev/null, so the interpreter's own flush at exit finds no
    closed pipe to complain about."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())


def worst(codes: Iterable[int]) -> int:
    """One exit code for several outcomes: a rejected token first (a person must act, and trying
    again feeds HA's ban), else the highest."""
    found = set(codes)
    return EXIT_AUTH if EXIT_AUTH in found else max(found, default=EXIT_OK)
