"""Configuration for a large, fully offline Home Assistant: thousands of registry entities.

The demo house plus a generated package file (``packages/homeiq_large_home.yaml``) of four kinds
of entities that need no device, no network and no requirements, and that each get an entity
registry entry: template sensors and binary sensors (with ``unique_id``), and ``input_boolean``
and ``input_number`` helpers (YAML helpers are registered under their key). Their templates
are constants, so HA renders each once and the home stays quiet after start-up.

    python scripts/large_home.py --config-dir DIR --entities 20000 [--port N]

then ``python scripts/real_ha.py serve --config-dir DIR`` runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_ha  # noqa: E402

PACKAGE_FILE = Path("packages") / "homeiq_large_home.yaml"
# configuration.yaml gains this; the demo config has no `homeassistant:` block of its own.
PACKAGES_YAML = "homeassistant:\n  packages: !include_dir_named packages\n"
KINDS = ("sensor", "binary_sensor", "input_boolean", "input_number")


def split_evenly(total: int) -> dict[str, int]:
    """How many entities of each kind make up ``total`` (the first kinds take the remainder)."""
    share, extra = divmod(total, len(KINDS))
    return {kind: share + (1 if index < extra else 0) for index, kind in enumerate(KINDS)}


def package_yaml(entities: int) -> str:
    """The package file's text: exactly ``entities`` registry entities."""
    counts = split_evenly(entities)
    lines = [
        # The recorder would write every generated state at start-up and drain that backlog at
        # shutdown (seconds per thousand entities); the mirror never reads history.
        "recorder:",
        "  exclude:",
        "    entity_globs:",
        '      - "*.large_home_*"',
        '      - "*.homeiq_large_*"',
        "template:",
        "  - sensor:",
    ]
    for n in range(counts["sensor"]):
        lines += _template("power", n, str(n % 3000), "unit_of_measurement: W", "device_class: power")
    lines.append("    binary_sensor:")
    for n in range(counts["binary_sensor"]):
        lines += _template("window", n, "true" if n % 2 else "false", "device_class: window")
    lines.append("input_boolean:")
    for n in range(counts["input_boolean"]):
        lines += [f"  homeiq_large_switch_{n:05d}:", f"    name: Large home switch {n:05d}"]
    lines.append("input_number:")
    for n in range(counts["input_number"]):
        lines += [
            f"  homeiq_large_level_{n:05d}:",
            f"    name: Large home level {n:05d}",
            "    min: 0",
            "    max: 100",
            f"    initial: {n % 101}",
        ]
    return "\n".join(lines) + "\n"


def write_large_home(config_dir: Path, port: int, entities: int) -> None:
    """The demo configuration (real_ha.write_config) plus ``entities`` generated entities."""
    config_dir = Path(config_dir)
    real_ha.write_config(config_dir, port, extra_yaml=PACKAGES_YAML)
    package = config_dir / PACKAGE_FILE
    package.parent.mkdir(parents=True, exist_ok=True)
    package.write_text(package_yaml(entities))

def _template(kind: str, n: int, state: str, *fields: str) -> list[str]:
    """One template entity with a unique_id (so it gets a registry entry) and a fixed state."""
    return [
        f"      - name: Large home {kind} {n:05d}",
        f"        unique_id: homeiq_large_{kind}_{n:05d}",
        f'        state: "{{{{ {state} }}}}"',
        *(f"        {field}" for field in fields),
    ]



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    port = args.port or real_ha.free_port()
    write_large_home(args.config_dir, port, args.entities)
    print(f"wrote a home of {args.entities} generated entities on port {port} to {args.config_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

