"""Read the settings, parse the command line, run the command; every failure is an exit code."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from .. import storage
from ..settings import HOME_NAME, HOME_NAME_RULE, Settings, SettingsError
from . import demo, run, status, sync, watch
from .exits import EXIT_CONFIG, EXIT_DATABASE, EXIT_INTERRUPTED, fail
from .parser import build_parser

Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {
    "sync": sync.command,
    "run": run.command,
    "watch": watch.command,
    "demo-server": demo.serve,
    "demo-change": demo.change,
    "status": status.command,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_environment()  # once per process; every command takes it from here
    except SettingsError as exc:
        return fail(EXIT_CONFIG, str(exc))
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not HOME_NAME.match(args.instance):  # the rule Dagster's partitions follow: no rows it cannot show
        return fail(EXIT_CONFIG, f"--instance {args.instance!r} cannot name a home: use {HOME_NAME_RULE}")
    try:
        return COMMANDS[args.command](args, settings)
    except SettingsError as exc:
        return fail(EXIT_CONFIG, str(exc))
    except (sa.exc.SQLAlchemyError, OSError) as exc:  # HA's errors are all handled by the commands
        cause = getattr(exc, "orig", None) or exc
        return fail(EXIT_DATABASE, f"database error at {storage.safe_url(args.db_url)}: {cause}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
