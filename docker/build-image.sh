#!/usr/bin/env bash
# Builds the homeiq-pipeline image from this checkout with podman (or docker).
#
#   docker/build-image.sh [--tag TAG] [--base-image IMAGE] [--offline] [-- ENGINE-BUILD-ARGS...]
#
# --offline: no registry and no package index (CI): builds the local base image
# (docker/build-base-image.sh) unless --base-image names one, builds the wheels on this machine
# (docker/build-wheels.sh) and installs only those in the image, with the build's network off.
# Without it, BASE_IMAGE defaults to python:3.11-slim and pip downloads what docker/wheels lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="localhost/homeiq-pipeline:latest"
BASE_IMAGE=""
OFFLINE=0
EXTRA=()
ENGINE="${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG="$2"; shift 2 ;;
        --base-image) BASE_IMAGE="$2"; shift 2 ;;
        --offline) OFFLINE=1; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "usage: $0 [--tag TAG] [--base-image IMAGE] [--offline] [-- ENGINE-BUILD-ARGS...]" >&2; exit 2 ;;
    esac
done

args=(build --file docker/Dockerfile --tag "$TAG")
if [ "$ENGINE" = podman ]; then
    # The docker format keeps HEALTHCHECK (OCI images have no such field); --ignorefile keeps the
    # context to what docker/Dockerfile.dockerignore lets through (not .venv/, data/, ...).
    args+=(--format docker --ignorefile docker/Dockerfile.dockerignore)
fi
if [ "$OFFLINE" = 1 ]; then
    if [ -z "$BASE_IMAGE" ]; then
        BASE_IMAGE="localhost/homeiq-base:bookworm-python3.11"
        bash docker/build-base-image.sh "$BASE_IMAGE"
    fi
    bash docker/build-wheels.sh docker/wheels
    args+=(--build-arg PIP_NO_INDEX=1 --network none)
fi
if [ -n "$BASE_IMAGE" ]; then args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE"); fi
args+=("${EXTRA[@]}")

echo "build-image.sh: $ENGINE ${args[*]} ."
"$ENGINE" "${args[@]}" .
echo "build-image.sh: $TAG built ($("$ENGINE" image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
