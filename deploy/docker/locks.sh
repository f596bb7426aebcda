#!/usr/bin/env bash
# The images' lock files (deploy/docker/locks/*.txt): every distribution an image installs, pinned
# exactly with its sha256 hashes, resolved from pyproject.toml's dependency groups (PEP 735) with
# `uv pip compile` against the package index the project uses, and held to the versions the venv
# runs (its `pip freeze` is a constraint), so the images run the pins the tests ran. `make locks`
# runs this; commit what it writes. The builds install from these files only, with `pip install
# --no-index --require-hashes` (deploy/docker/context.sh fetches the wheels beforehand).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"

UV="${UV:-$repo/.venv/bin/uv}"
PY="${PY:-$repo/.venv/bin/python}"
OUT=deploy/docker/locks
PIP_VERSION="$(sed -n 's/^PIP_VERSION := //p' Makefile)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# The project's index: PyPI, plus the local indexes and wheel folder pip's own configuration names
# on this machine (uv does not read pip's configuration).
indexes=(--index-url "${LOCK_INDEX_URL:-https://pypi.org/simple}")
for url in $("$PY" -m pip config get global.extra-index-url 2>/dev/null || true); do
    indexes+=(--extra-index-url "$url")
done
links=()
for folder in $("$PY" -m pip config get global.find-links 2>/dev/null || true); do
    links+=(--find-links "$folder")
done

# uv runs in the work folder on copies, so the locks' "via" notes name no temporary path.
cp pyproject.toml "$work/"
cd "$work"
"$PY" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e ' >venv.txt

compile() { # compile NAME [uv args...]: one lock, resolved for the images' Python 3.11 and glibc 2.36 (bookworm)
    local name="$1"
    shift
    "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_36 --index-strategy unsafe-best-match \
        --custom-compile-command "make locks" "${indexes[@]}" "$@" -o "$repo/$OUT/$name.txt"
    echo "$OUT/$name.txt: $(grep -c '^[a-z0-9]' "$repo/$OUT/$name.txt") distributions"
}

echo "pip==$PIP_VERSION" >pip.in
compile pip pip.in
for group in protos gateway providers storage tasks; do
    compile "$group" --group "$group" -c venv.txt
done
# The CPU model servers: torch's CPU build, the wheel the venv runs (the local wheel folder's).
grep '^torch==' venv.txt >torch-cpu.txt
compile modelserver-cpu --group modelserver "${links[@]}" --override torch-cpu.txt -c venv.txt
# The CUDA model servers: PyPI's Linux torch, the CUDA build with its nvidia-* runtime wheels.
grep -v '^torch==' venv.txt >venv-no-torch.txt
compile modelserver-cuda --group modelserver -c venv-no-torch.txt
# The S3 stand-in `make e2e-containers` runs in MinIO's place: moto's server, as the tests run it.
grep -o '"moto\[server\]==[^"]*"' pyproject.toml | tr -d '"' >s3.in
compile s3 s3.in -c venv.txt
