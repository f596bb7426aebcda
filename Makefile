# imagemesh: `make run` starts the mesh on loopback, `make test` passes the tests.
# Every setup step lives here, so both work on a fresh clone of a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
TOOLS_STAMP := $(VENV)/.tools
PROTOS := $(wildcard protos/imagemesh/v1/*.proto)
GEN_STAMP := gen/.stamp
MODELS_STAMP := models/.stamp
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf

.PHONY: setup postgres chromium run test fuzz lint typecheck bench deploy-check images push-images protos models clean

setup: $(VENV_STAMP) $(GEN_STAMP) $(MODELS_STAMP)

# The venv's tools come first: a pip new enough for dependency groups (pip installs them from 25.1
# on) and the stub generator (the `protos` group), so the stubs exist before the project installs.
PIP_VERSION := 26.3
$(TOOLS_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(PY) -m pip install -q --disable-pip-version-check --group protos
	touch $@

# Stubs are generated at build time with the pinned grpcio-tools and never committed.
$(GEN_STAMP): $(TOOLS_STAMP) $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen --pyi_out=gen $(PROTOS)
	touch $@

# The project, installed editable: services/ and the stubs' gen/imagemesh are its packages
# (pyproject.toml), so `import imagemesh.v1` works in every process the venv runs. setuptools
# maps gen/imagemesh only if it exists when the project installs: hence the stubs first
# (order-only: regenerating them later needs no reinstall). torch is pinned exactly in
# pyproject.toml (2.13.0 is the CPU wheel on local disk); `dev` takes every service's group.
$(VENV_STAMP): pyproject.toml | $(GEN_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e . --group dev
	touch $@

protos: $(GEN_STAMP)

# The tiny, randomly initialised Qwen pipelines of the real architecture (built offline, seeded).
$(MODELS_STAMP): $(VENV_STAMP) $(wildcard services/tinymodels/*.py)
	$(PY) -m services.tinymodels --out models
	$(PY) -m services.tinymodels.qwen_image_21 --out models
	$(PY) -m services.tinymodels.layered --out models
	$(PY) -m services.tinymodels.lora --out models
	$(PY) -m services.tinymodels.controlnet --out models
	touch $@

models: $(MODELS_STAMP)

run: setup
	mkdir -p run
	$(PY) -m supervisor.supervisord -n -c deploy/local/supervisord.conf

# The task tests run a real PostgreSQL server in a temp folder: Debian's server binaries, installed
# only when none is found (Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH).
postgres:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }

# The web page's test drives Debian's chromium with Playwright (never `playwright install`, which
# downloads a browser build of its own): installed only when /usr/bin/chromium is missing.
chromium:
	@test -x /usr/bin/chromium || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: setup postgres chromium
	$(PY) -m pytest -q

# schemathesis over every route of the gateway's OpenAPI document, against a mesh of its own with
# small limits (tests/reliability/test_fuzz.py); `make test` runs the same with FUZZ_EXAMPLES=8.
# Ends with "fuzz: N requests tried, M 5xx seen" (details in tests/artifacts/fuzz.json).
FUZZ_EXAMPLES ?= 100
fuzz: setup
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/reliability/test_fuzz.py

bench: setup
	$(PY) -m bench

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

lint: $(VENV_STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	cd protos && ../$(BUF) lint

typecheck: setup
	$(VENV)/bin/mypy services

# Then what would be applied (DEPLOY_BUILDS, folders under deploy/): fails while a placeholder
# secret is left or the default-deny egress policy is missing (tests/deploy/secure.py).
DEPLOY_BUILDS ?= overlays/cpu overlays/gpu
deploy-check: $(VENV_STAMP)
	$(PY) -m pytest -q tests/deploy
	$(PY) -m tests.deploy.secure $(DEPLOY_BUILDS)

# Container images (needs a Docker engine; nothing in `make test` does). One target per image in
# deploy/docker/Dockerfile; model servers in two flavours, tagged TAG-cpu and TAG-cuda. The names
# and tags match deploy/base and the overlays: change IMAGE_REGISTRY and IMAGE_TAG together with
# the overlay's `images:` (deploy/README.md). No registry is needed: the base is Debian bookworm
# itself (deploy/docker/base.sh: debootstrap, once, then reused), the builds install the lock
# files' wheels, fetched on the host beforehand (deploy/docker/context.sh), with --no-index and
# --require-hashes; the classic builder (DOCKER_BUILDKIT=0) is enough.
DOCKER ?= docker
# Extra `docker build` flags, e.g. --build-arg BASE_IMAGE=... (deploy/README.md).
DOCKER_BUILD_ARGS ?=
IMAGE_REGISTRY ?= imagemesh
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BASE_IMAGE ?= imagemesh/debian-python:bookworm
CPU_IMAGE_TARGETS := gateway providers storage tasks qwen-image-cpu qwen-edit-cpu
IMAGE_TARGETS := $(CPU_IMAGE_TARGETS) qwen-image-cuda qwen-edit-cuda
# qwen-image-cpu -> $(IMAGE_REGISTRY)/qwen-image:$(IMAGE_TAG)-cpu; gateway -> .../gateway:$(IMAGE_TAG)
image_ref = $(IMAGE_REGISTRY)/$(if $(filter %-cpu %-cuda,$(1)),$(patsubst %-$(lastword $(subst -, ,$(1))),%,$(1)):$(IMAGE_TAG)-$(lastword $(subst -, ,$(1))),$(1):$(IMAGE_TAG))
DOCKER_BUILD := DOCKER_BUILDKIT=0 nice -n 10 $(DOCKER) build $(DOCKER_BUILD_ARGS) --build-arg BASE_IMAGE=$(BASE_IMAGE)

.PHONY: locks image-base image-context image-context-cuda images-cpu e2e-stand-ins e2e-containers

# The images' hash-pinned lock files (deploy/docker/locks), from pyproject.toml's groups: run after
# changing a pin, and commit them.
locks: $(VENV_STAMP)
	deploy/docker/locks.sh

image-base:
	DOCKER=$(DOCKER) deploy/docker/base.sh $(BASE_IMAGE)

# The wheels of the locks the images install; the CUDA ones (several GB) only for a CUDA target.
image-context: $(VENV_STAMP)
	deploy/docker/context.sh

image-context-cuda: $(VENV_STAMP)
	deploy/docker/context.sh cuda

images: $(addprefix image-,$(IMAGE_TARGETS))

images-cpu: $(addprefix image-,$(CPU_IMAGE_TARGETS))

image-%-cuda: | image-base image-context image-context-cuda
	$(DOCKER_BUILD) -f deploy/docker/Dockerfile --target $*-cuda -t $(call image_ref,$*-cuda) .

image-%: | image-base image-context
	$(DOCKER_BUILD) -f deploy/docker/Dockerfile --target $* -t $(call image_ref,$*) .

push-images: images
	$(foreach target,$(IMAGE_TARGETS),$(DOCKER) push $(call image_ref,$(target)) &&) true

# `make e2e-containers`: the cpu overlay's whole mesh as containers (scripts/e2e_containers), with
# local stand-ins for the two Docker Hub images the manifests name (PostgreSQL, MinIO).
e2e-stand-ins: | image-base image-context
	$(DOCKER_BUILD) -f deploy/docker/e2e/Dockerfile --target postgres -t imagemesh-e2e/postgres:bookworm .
	$(DOCKER_BUILD) -f deploy/docker/e2e/Dockerfile --target s3 -t imagemesh-e2e/s3:bookworm .

e2e-containers: images-cpu e2e-stand-ins
	$(PY) -m scripts.e2e_containers

clean:
	rm -rf gen models run .tools
