#!/usr/bin/env bash
# The wheels the image builds install, fetched on the host the way the venv gets them (pip, with
# this machine's pip configuration: its package index, local indexes and wheel folder), checked
# against the lock files' hashes, into the git-ignored build context folders the Dockerfile copies:
#   build/wheels/       every wheel of the CPU images' locks (all the `make images` CPU targets)
#   build/wheels-cuda/  the CUDA model servers' lock (several GB)
# Nothing inside a build reaches a network: `pip install --no-index --require-hashes`.
#
#   deploy/docker/context.sh        the CPU images' wheels
#   deploy/docker/context.sh cuda   the CUDA model servers' wheels
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PY:-.venv/bin/python}"
LOCKS=deploy/docker/locks

# The venv's interpreter on this bookworm host is the images' (CPython 3.11, glibc 2.36): pip picks
# the wheels that install there.
fetch() { # fetch FOLDER LOCK...: the wheels of every lock
    local folder="$1"
    shift
    mkdir -p "$folder"
    for lock in "$@"; do
        nice -n 10 "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
            --require-hashes --only-binary=:all: --dest "$folder" -r "$LOCKS/$lock.txt"
    done
    echo "$folder: $(find "$folder" -name '*.whl' | wc -l) wheels, $(du -sh "$folder" | cut -f1)"
}

if [ "${1:-}" = cuda ]; then
    fetch build/wheels-cuda pip modelserver-cuda
else
    fetch build/wheels pip protos gateway providers storage tasks modelserver-cpu s3
fi
