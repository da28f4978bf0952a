"""The compose file: optional services stay behind their profiles and nothing is published beyond
this machine by default."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker" / "docker-compose.yml"


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_optional_services_start_only_with_their_profile() -> None:
    found = services()
    assert found["demo-ha"]["profiles"] == ["demo"]
    assert found["influxdb"]["profiles"] == ["influxdb"]
    assert "profiles" not in found["dagster-webserver"] and "profiles" not in found["dagster-daemon"]


def test_published_ports_are_on_loopback_by_default() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith(("127.0.0.1:", "${HOMEIQ_BIND:-127.0.0.1}:")), (name, port)


def test_the_influxdb_service_is_set_up_from_the_pipelines_own_settings() -> None:
    environment = services()["influxdb"]["environment"]
    assert environment["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "${INFLUXDB_TOKEN:-}"
    assert environment["DOCKER_INFLUXDB_INIT_BUCKET"] == "${INFLUXDB_BUCKET:-home_assistant}"
