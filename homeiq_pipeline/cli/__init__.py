"""`homeiq-pipeline`: sync Home Assistant into the mirror once, watch it live, or show the mirror's status.

The token is read from HA_TOKEN only: a flag would land in shell history and process lists.
"""

from .exits import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_HA_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)
from .main import main

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_DATABASE",
    "EXIT_HA_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "main",
]
