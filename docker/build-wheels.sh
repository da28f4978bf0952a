#!/usr/bin/env bash
# Builds wheels of every dependency of homeiq-pipeline (plus dumb-init, the image's init, and
# setuptools, its build backend) into docker/wheels/, so `docker build` / `podman build` can
# install everything with --no-index where the build cannot reach the package index.
#
# The wheels must match the image's Python: run this with a Python of the same minor version as
# the base image (3.11 for python:3.11-slim and docker/build-base-image.sh): PYTHON=python3.11.
# The wheel set is cached under $HOMEIQ_CONTAINER_CACHE (default ~/.cache/homeiq/container),
# keyed by pyproject.toml and the Python version, and copied from there when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
OUT="${1:-docker/wheels}"
EXPECTED="${HOMEIQ_IMAGE_PYTHON:-3.11}"
CACHE="${HOMEIQ_CONTAINER_CACHE:-$HOME/.cache/homeiq/container}"
EXTRA=("dumb-init==1.2.5.post1" "setuptools>=69")

version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "$EXPECTED" ]; then
    echo "build-wheels.sh: $PYTHON is Python $version but the image runs $EXPECTED; set PYTHON=python$EXPECTED" >&2
    exit 2
fi
# Keyed by what decides the wheel set: the project's dependencies, the extras, Python, the machine.
dependencies="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])')"
key="$(echo "$dependencies ${EXTRA[*]} $version $(uname -m)" | sha256sum | cut -c1-12)"
cached="$CACHE/wheels-$key"

if [ ! -s "$cached/.complete" ]; then
    rm -rf "$cached.tmp" && mkdir -p "$cached.tmp"
    echo "build-wheels.sh: building wheels for Python $version into $cached"
    # The project itself is built from source inside the image build (so it is never stale);
    # here it only serves to resolve its dependencies, and its wheel is dropped.
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$cached.tmp" . "${EXTRA[@]}" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    rm -f "$cached.tmp"/homeiq_pipeline-*.whl
    ls "$cached.tmp" > "$cached.tmp/.complete"
    rm -rf "$cached" && mv "$cached.tmp" "$cached"
    # Older wheel sets (other dependencies) are not needed any more.
    find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$key" -exec rm -rf {} +
fi

mkdir -p "$OUT"
find "$OUT" -maxdepth 1 -name '*.whl' -delete
cp -l "$cached"/*.whl "$OUT"/ 2>/dev/null || cp "$cached"/*.whl "$OUT"/
echo "build-wheels.sh: $(find "$OUT" -maxdepth 1 -name "*.whl" | wc -l) wheels ($(du -shc "$OUT"/*.whl | tail -1 | cut -f1)) in $OUT"
