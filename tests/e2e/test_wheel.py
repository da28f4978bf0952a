"""The project from an installed wheel, not a source checkout: the code location loads (definitions.py
calls dg.load_from_defs_folder, which needs the dg.toml the package ships), and `homeiq-pipeline
run` starts Dagster with the package's dagster.yaml (the one-sync-per-home queue limits) and the
location named homeiq_pipeline, as the watcher expects it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from homeiq_pipeline import names

from ..helpers import free_port, graphql, stop_run, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }
"""


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh venv with only the wheel installed; its dependencies are borrowed from
    this venv through a path entry (which does not run this venv's .pth files, so the editable
    checkout stays out)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheels = tmp / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheels.glob("homeiq_pipeline-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    for data in ("dg.toml", "dagster.yaml", "workspace.yaml", "demo/data/ha-2025.4.4.json"):
        assert f"homeiq_pipeline/{data}" in packaged, data
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip())
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_definitions_load_from_the_installed_wheel_in_a_fresh_venv(wheel_python: Path, tmp_path: Path) -> None:
    probe = (
        "import homeiq_pipeline, dagster as dg\n"
        "from homeiq_pipeline.definitions import defs\n"
        "d = defs()\n"
        "print(homeiq_pipeline.__file__)\n"
        "print(sorted(k.to_user_string() for k in d.resolve_all_asset_keys()))\n"
        "print(sorted({j.name for j in d.jobs}), [s.name for s in d.sensors], sorted(s.name for s in d.schedules))\n"
    )
    result = subprocess.run([str(wheel_python), "-c", probe], check=False, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    location, assets, jobs = result.stdout.splitlines()[-3:]
    assert location.startswith(str(wheel_python.parents[1])), location  # the wheel, not the checkout
    assert "'ha_devices'" in assets and "'home_overview'" in assets
    assert "sync_home_assistant" in jobs and "home_assistant_reconnect" in jobs


def test_run_from_the_wheel_names_the_location_and_installs_the_queue_limits(wheel_python: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ, "HA_URL": f"http://127.0.0.1:{free_port()}", "HA_TOKEN": "a-token-for-nothing",
        "DAGSTER_HOME": str(tmp_path / "dagster"), "HOMEIQ_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("HOMEIQ_HOMES_FILE", None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(wheel_python), "-m", "homeiq_pipeline.cli", "run", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        def loaded() -> list[tuple[str, str]]:
            try:
                entries = graphql(url, LOCATIONS, timeout=5)["workspaceOrError"]["locationEntries"]
            except OSError:
                return []
            return [(e["name"], (e["locationOrLoadError"] or {}).get("__typename", "")) for e in entries]

        try:
            located = wait_for("the code location of `run` from the wheel", loaded, timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{log.read_text(errors='replace')[-4000:]}") from None
        assert located == [(names.LOCATION, "RepositoryLocation")], log.read_text(errors="replace")[-4000:]
        shipped = (wheel_python.parents[1] / "lib").glob("python*/site-packages/homeiq_pipeline/dagster.yaml")
        assert (tmp_path / "dagster" / "dagster.yaml").read_text() == next(shipped).read_text()
        assert "applyLimitPerUniqueValue" in (tmp_path / "dagster" / "dagster.yaml").read_text()
    finally:
        stop_run(process)
