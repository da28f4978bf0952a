"""`run`'s look before Dagster starts: one short connection to each home (`get_config`), so a
token HA rejects or a certificate nobody trusts stops it with the message and exit code `sync`
gives, instead of a deployment that starts and then fails every run. A home that is unreachable
(or answers something unusable) is a warning: Dagster starts anyway, and its sensor syncs the home
once it answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..homeassistant.reachability import Observation, observe
from .connections import Connect
from .exits import EXIT_OK, FOR_CAUSE, fail, warn, worst

TIMEOUT = 5.0  # seconds: a look, not a sync; a home that does not answer by then is a warning


def check_homes(homes: dict[str, Connect]) -> int:
    """Look at every home at once; EXIT_OK if Dagster may start, else the exit code to stop with
    (having said why for each home that needs a person)."""
    with ThreadPoolExecutor(max(1, len(homes))) as pool:
        seen = dict(zip(homes, pool.map(_look, homes.values()), strict=True))
    codes = [EXIT_OK]
    for home, observation in seen.items():
        about = f"home {home!r}: " if len(homes) > 1 else ""
        if observation.problem is not None and observation.problem.settings_must_change:
            code = FOR_CAUSE[observation.problem]
            codes.append(
                fail(code, f"{about}{observation.message}. Dagster was not started (run --no-check starts it anyway).")
            )
        elif not observation.reachable:
            warn(f"{about}{observation.message}; starting Dagster anyway: its sensor syncs once Home Assistant answers")
    return worst(codes)


def _look(connect: Connect) -> Observation:
    client = connect()
    client.timeout = min(client.timeout, TIMEOUT)
    return observe(client)
