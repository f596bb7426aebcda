# imagemesh: `make run` starts the mesh on loopback, `make test` passes the tests.
# Every setup step lives here, so both work on a fresh clone of a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/imagemesh/v1/*.proto)
GEN_STAMP := gen/.stamp
MODELS_STAMP := models/.stamp
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf

.PHONY: setup run test lint typecheck bench deploy-check images protos models clean

setup: $(VENV_STAMP) $(GEN_STAMP) $(MODELS_STAMP)

# The venv: torch is pinned exactly in pyproject.toml (2.13.0 is the CPU wheel on local disk).
# The .pth file puts the generated stubs (gen/) on the venv's path, so `import imagemesh.v1` works
# in every process the venv runs.
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	echo "$(CURDIR)/gen" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/imagemesh-gen.pth
	touch $@

# Stubs are generated at build time with the pinned grpcio-tools and never committed.
$(GEN_STAMP): $(VENV_STAMP) $(PROTOS)
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen --pyi_out=gen $(PROTOS)
	touch $@

protos: $(GEN_STAMP)

# The tiny, randomly initialised Qwen pipelines of the real architecture (built offline, seeded).
$(MODELS_STAMP): $(VENV_STAMP) $(wildcard services/tinymodels/*.py)
	$(PY) -m services.tinymodels --out models
	touch $@

models: $(MODELS_STAMP)

run: setup
	mkdir -p run
	$(PY) -m supervisor.supervisord -n -c deploy/local/supervisord.conf

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

lint: $(VENV_STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd protos && ../$(BUF) lint

typecheck: setup
	$(VENV)/bin/mypy services

deploy-check: $(VENV_STAMP)
	$(PY) -m pytest -q tests/deploy

images:
	docker build -f deploy/docker/Dockerfile --target gateway -t imagemesh/gateway .

clean:
	rm -rf gen models run .tools
