"""Exit codes, so scripts can tell a transient failure from one that needs a person, and the one
mapping from Home Assistant's failure causes to them."""

import sys

from ..homeassistant import Cause

EXIT_OK = 0
EXIT_CONFIG = 2  # missing or invalid settings, or HA's TLS certificate is not trusted (the CA bundle)
EXIT_UNAVAILABLE = 3  # unreachable, timed out or still starting: try again later
EXIT_AUTH = 4  # the token was rejected
EXIT_HA_ERROR = 5  # HA answered something we cannot use
EXIT_REFUSED = 6  # the data-loss guard refused the snapshot, or it could not be stored
EXIT_DATABASE = 7  # the database could not be opened or written
EXIT_INTERRUPTED = 130  # Ctrl-C

FOR_CAUSE = {
    Cause.UNAVAILABLE: EXIT_UNAVAILABLE,
    Cause.TOKEN_REJECTED: EXIT_AUTH,
    Cause.CERTIFICATE_NOT_TRUSTED: EXIT_CONFIG,  # a setting (the CA bundle) must change
    Cause.UNUSABLE_ANSWER: EXIT_HA_ERROR,
}


def fail(code: int, message: str) -> int:
    print(f"homeiq-pipeline: {message}", file=sys.stderr)
    return code
