#!/usr/bin/env bash
# Installs and configures what the container tier needs on a Debian machine without a Docker
# engine: podman, buildah, runc, debootstrap (Debian's packages), netavark + aardvark-dns +
# iptables (container networks with DNS), and podman-compose (PyPI, in its own venv).
# Idempotent: a second run changes nothing and takes about a second. Needs root.
set -euo pipefail

PODMAN_COMPOSE_VERSION="${PODMAN_COMPOSE_VERSION:-1.6.0}"
TOOLS_VENV="${HOMEIQ_PODMAN_COMPOSE_VENV:-/opt/homeiq/podman-compose}"

if [ "$(id -u)" != 0 ]; then
    echo "setup-podman.sh: run as root (it installs Debian packages and writes /etc/containers)" >&2
    exit 1
fi

packages=(podman buildah runc debootstrap netavark aardvark-dns iptables uidmap)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-podman.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# runc (crun is not installed), and ulimits a container may actually get: podman's default
# (nofile 1048576) is above this machine's hard limit and every container would fail to start.
mkdir -p /etc/containers/containers.conf.d
cat > /etc/containers/containers.conf.d/50-homeiq.conf.new <<'CONF'
# Written by homeiq-pipeline's docker/setup-podman.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
CONF
mv /etc/containers/containers.conf.d/50-homeiq.conf.new /etc/containers/containers.conf.d/50-homeiq.conf

if ! "$TOOLS_VENV/bin/podman-compose" version 2>/dev/null | grep -q "podman-compose version $PODMAN_COMPOSE_VERSION"; then
    echo "setup-podman.sh: installing podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION" 2> >(grep -v "is ignored: it is neither" >&2)
fi
ln -sf "$TOOLS_VENV/bin/podman-compose" /usr/local/bin/podman-compose

podman version --format 'podman {{.Client.Version}}'
podman info --format 'runtime {{.Host.OCIRuntime.Name}}, network {{.Host.NetworkBackend}}, storage {{.Store.GraphDriverName}}, cgroups {{.Host.CgroupsVersion}}'
podman-compose version 2>/dev/null | head -1
