"""What every asset check shares: judge each home in scope, pass only if each home passes."""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from .partitions import homes_in_scope

Verdict = tuple[bool, Mapping[str, Any]]  # passed, metadata


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
