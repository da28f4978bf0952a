"""How every asset check on the mirror is built: it reads one snapshot per home, judges each home
in scope (the run's, or every home outside a sync), and passes only if each home passes."""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa

from ..storage import read_snapshot
from .partitions import homes_in_scope
from .resources import MirrorDatabase

Verdict = tuple[bool, Mapping[str, Any]]  # passed, metadata
Judge = Callable[[sa.Connection, str], Verdict]  # one home, read in one snapshot


def mirror_check(asset: str, description: str) -> Callable[[Judge], dg.AssetChecksDefinition]:
    """An asset check named after `judge`: `judge(connection, home)` reads everything it compares
    through one connection, so a sync committing meanwhile cannot fail it falsely."""

    def build(judge: Judge) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=asset, name=judge.__name__, description=description)
        def check(context: dg.AssetCheckExecutionContext, mirror: MirrorDatabase) -> dg.AssetCheckResult:
            def evaluate(home: str) -> Verdict:
                with read_snapshot(mirror.engine) as connection:
                    return judge(connection, home)

            return check_each_home(context, evaluate)

        return check

    return build


def check_each_home(context: dg.AssetCheckExecutionContext, evaluate: Callable[[str], Verdict]) -> dg.AssetCheckResult:
    """Run a check for the run's home (or every home outside a sync); it passes if each home does."""
    verdicts = {home: evaluate(home) for home in homes_in_scope(context)}
    if len(verdicts) == 1:
        ((home, (passed, metadata)),) = verdicts.items()
        return dg.AssetCheckResult(passed=passed, metadata={"home": home, **metadata})
    return dg.AssetCheckResult(
        passed=all(passed for passed, _ in verdicts.values()),
        metadata={
            f"{home}: {name}": value
            for home, (passed, metadata) in verdicts.items()
            for name, value in {"passed": passed, **metadata}.items()
        },
    )
