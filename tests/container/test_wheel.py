"""The code location loads from an installed wheel, not only from a source checkout: definitions.py
calls dg.load_from_defs_folder, which needs the dg.toml the package ships (site-packages has no
pyproject.toml above the package). Runs in the fast tier: no container needed."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_from_the_installed_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheels.glob("homeiq_pipeline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "homeiq_pipeline/dg.toml" in names
    assert "homeiq_pipeline/demo/data/ha-2025.4.4.json" in names

    # A fresh venv with the wheel installed; its dependencies are borrowed from this venv through a
    # path entry (which does not run this venv's .pth files, so the editable checkout stays out).
    venv = tmp_path / "venv"
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

    probe = (
        "import homeiq_pipeline, dagster as dg\n"
        "from homeiq_pipeline.definitions import defs\n"
        "d = defs()\n"
        "print(homeiq_pipeline.__file__)\n"
        "print(sorted(k.to_user_string() for k in d.resolve_all_asset_keys()))\n"
        "print(sorted({j.name for j in d.jobs}), [s.name for s in d.sensors], sorted(s.name for s in d.schedules))\n"
    )
    result = subprocess.run([str(python), "-c", probe], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    location, assets, jobs = result.stdout.splitlines()[-3:]
    assert location.startswith(str(site)), location  # the wheel, not the checkout
    assert "'ha_devices'" in assets and "'home_overview'" in assets
    assert "sync_home_assistant" in jobs and "home_assistant_reconnect" in jobs
