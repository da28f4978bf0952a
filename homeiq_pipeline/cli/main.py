"""Read the settings, parse the command line, run the command; every failure is an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from .. import storage
from ..settings import HOME_NAME, HOME_NAME_RULE, Settings, SettingsError
from . import demo, run, status, sync, watch
from .exits import EXIT_CONFIG, EXIT_DATABASE, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, devnull_stream, fail
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
    _log_for_a_person(args.verbose)
    if not HOME_NAME.match(args.instance):  # the rule Dagster's partitions follow: no rows it cannot show
        return fail(EXIT_CONFIG, f"--instance {args.instance!r} cannot name a home: use {HOME_NAME_RULE}")
    try:
        code = COMMANDS[args.command](args, settings)
        sys.stdout.flush()  # here, not at exit: a reader that went away is an answer below, not a traceback
        return code
    except BrokenPipeError:  # stdout closed (`| head`): what was done is done; nobody is left to tell
        devnull_stream(sys.stdout)
        return EXIT_PIPE_CLOSED
    except SettingsError as exc:
        return fail(EXIT_CONFIG, str(exc))
    except (sa.exc.SQLAlchemyError, OSError) as exc:  # HA's errors are all handled by the commands
        cause = getattr(exc, "orig", None) or exc
        return fail(EXIT_DATABASE, f"database error at {storage.safe_url(args.db_url)}: {cause}")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")


def _log_for_a_person(verbose: bool) -> None:
    """Our INFO lines (what a person reads: connected, watching, requested a sync); the details
    (our DEBUG, the libraries' INFO: websockets, Alembic) only with --verbose. Left alone if
    logging is set up already (a test runner, a program calling `main`)."""
    if logging.getLogger().handlers:
        return
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("homeiq_pipeline").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.raiseExceptions = False  # a closed stderr (`2>&1 | head`) silences the log, without "Logging error" traces
