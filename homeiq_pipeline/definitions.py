"""The Dagster code location `homeiq_pipeline`: everything under defs/, one folder per source system."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
