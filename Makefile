# AI Factory Workbench: the README's two commands are `make demo` and `make test`.
# Everything is installed under $(PREFIX), readable by the users whose jobs run from it
# (this machine's own Python lives under /root, which they cannot reach).
PREFIX     ?= /opt/aifactory
# Three installs, apart: the hub's (the package alone: JupyterHub, batchspawner, the hub's side,
# root's helpers' Python), the users' stack that jobs run (the lab extra: JupyterLab, Dask, the
# science packages; the site file's singleuser.venv) and the developer's, from which the suite
# runs (both extras and the test tools).
HUB_VENV   := $(PREFIX)/hub-venv
VENV       := $(PREFIX)/venv
DEV_VENV   := $(PREFIX)/dev-venv
NODE_DIR   := $(PREFIX)/node
STATE      ?= /var/lib/aifactory
SITE       ?= $(CURDIR)/config/site.yaml
PY         := $(DEV_VENV)/bin/python
CHP        := $(NODE_DIR)/node_modules/.bin/configurable-http-proxy
OIDC       := $(NODE_DIR)/oidc-provider.mjs
AXE        := $(NODE_DIR)/node_modules/axe-core/axe.min.js
CLUSTER    := cluster/minicluster.sh
# The demo hub's pid and log: written by root, in folders only root may change (the hub
# account owns $(STATE): a link it planted there would have root write anywhere). The log
# (every user's sign-ins, addresses, jobs and errors) is root's and group adm's only: its folder
# 0750, the log and its rotated copies 0640 (start-hub and `aifactory-site install` see to it).
HUB_PID    := /run/aifactory-hub/hub.pid
HUB_LOG    := /var/log/aifactory/hub.log
# The demo's proxy runs on its own (hub.proxy_token_file), so `make hub-stop hub-start` keeps
# every open connection to a running JupyterLab; its pid is root's too, its output the hub's log.
PROXY_PID  := /run/aifactory-hub/proxy.pid
# True while the pid file $(1) names a process of $(HUB_USER) whose command line holds $(2), and
# sets $$pid: a stale file's pid may belong to anyone by now, and root kills no one else.
running = { pid=$$(cat $(1) 2>/dev/null) && case "$$pid" in ''|*[!0-9]*) false;; esac \
  && [ "$$(awk '/^Uid:/ {print $$2}' /proc/$$pid/status 2>/dev/null)" = "$$(id -u $(HUB_USER))" ] \
  && tr '\0' ' ' </proc/$$pid/cmdline | grep -q '$(2)'; }
HUB_RUNNING = $(call running,$(HUB_PID),/bin/jupyterhub )
PROXY_RUNNING = $(call running,$(PROXY_PID),configurable-http-proxy )
# Stops $$pid (a check above set it), waits up to 10 s for it to end, and says "$(1) stopped".
stop_process = kill $$pid; for i in $$(seq 40); do kill -0 $$pid 2>/dev/null || break; sleep 0.25; done; echo "$(1) stopped"
# The URL users type, from the demo's site file.
PUBLIC_URL = $$($(HUB_VENV)/bin/aifactory-site show $(SITE) | sed -n 's|^  public_url: ||p')
# The demo's https front: its own CA and a certificate for hub.localhost and *.hub.localhost
# (browsers resolve every name under .localhost to this machine).
TLS_DIR    := /etc/aifactory/tls
# aifactory-workshop tells the running hub of a workshop with this admin service's token.
WORKSHOP_TOKEN := /etc/aifactory/workshop-cli.token
DEMO_HOST  := hub.localhost
# The demo hub's certificates for internal TLS (hub.state_dir/internal-ssl, made by the hub).
DEMO_INTERNAL_SSL := $(STATE)/hub/internal-ssl
PYTEST_ARGS ?=
HUB_USER   := aifactory-hub
USERS_GROUP := aifactory-users
# The hub's admins and staff: sudo never lets the hub run anything as them (config/sudoers.in).
ADMINS_GROUP := aifactory-admins
SYSTEM_PACKAGES := python3 python3-venv python3-dev sudo nodejs curl chromium logrotate
# The lab extension: TypeScript in $(LABEXT), built by JupyterLab's builder into lab/labextension
# (ignored by git), which the wheel carries prebuilt, so a site needs no Node. It is built again
# only when its sources, its settings or its locked packages change.
LABEXT     := labextension
LABEXT_BUILT := lab/labextension/package.json
LABEXT_PACKAGES := $(LABEXT)/node_modules/.package-lock.json
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/style/*) $(LABEXT)/package.json $(LABEXT)/tsconfig.json
# The release (`make dist`): the sdist and, built from it, the wheel, into dist/. What builds it
# (JupyterLab's builder, with pyproject.toml's JupyterLab, and uv) is a venv of its own, so a
# clean clone needs Node and Python alone.
BUILD_ENV  := .build-env
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL      := dist/aifactory_workbench-$(VERSION)-py3-none-any.whl
# The demo's choice of builds (torch's CPU build), from this machine's wheel folder (pip's
# find-links, which uv, reading no pip configuration, is given as well).
CONSTRAINTS := cluster/constraints.txt
WHEELS     ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
UV         := $(BUILD_ENV)/bin/uv
UV_FROM    := --find-links $(WHEELS) --constraint $(CONSTRAINTS)
# A developer's own venv (`make dev`), in the clone, made by whoever runs it, no root: the package
# installed editable from the working tree (setuptools' strict mode: a tree of links to the clone's
# files, build/__editable__.*, on the venv's path, which mypy and import-linter follow as Python
# does), with the lab and test extras. Where the clone has one, or `make dev` is asked for, `make unit`
# and `make lint` run there and need neither root nor `make install`; otherwise in $(DEV_VENV), as
# before (`make test` always runs the suite there).
DEV_ENV    := .venv
ifneq ($(filter dev,$(MAKECMDGOALS))$(wildcard $(DEV_ENV)/bin/python),)
TOOLS      := $(CURDIR)/$(DEV_ENV)
TOOLS_FROM := dev
SYSTEM     :=
else
TOOLS      := $(DEV_VENV)
TOOLS_FROM := install
SYSTEM     := $(PREFIX)/.system
endif
# The folders whose files the editable install links: a file added or removed there changes its
# folder, and `make dev` links again.
PACKAGE_DIRS := hub spawners slurm job lab root

.PHONY: install dev dist labextension-test demo test unit screenshots bench stop hub-start hub-stop proxy-start proxy-stop demo-files cluster-start cluster-stop lint docs clean-state

# The wheel (`make dist`) into each of the three venvs, with its extras, is the whole software
# install (uv, from each venv's lock: exactly those packages). Then the hub's `aifactory-site install`
# sets up, as root, what needs root (root/site_install.py): the hub's account and groups, its
# sudo rules and password helper, its folders, users' Dask config, login shells' Dask settings,
# the site kernel's lock, the systemd unit of the hub and its proxy, log rotation, SLURM's
# epilog. The demo's site file goes where a site's does, /etc/aifactory/site.yaml. It prints
# what it changed.
install: dist $(HUB_VENV)/.lock.txt $(VENV)/.lock.txt $(DEV_VENV)/.lock.txt $(CHP) $(OIDC) $(AXE)
	@$(call sync,$(HUB_VENV)) --compile-bytecode --link-mode copy
	@$(call sync,$(VENV)) --compile-bytecode
	@$(call sync,$(DEV_VENV))
	@# The demo site's own kernels (cluster/kernels: aifactory-climate needs the mini cluster's
	@# climate-tools module), where a site puts its kernels: beside the site kernel in the users' venv.
	@for k in cluster/kernels/*/; do install -D -m 644 -t $(VENV)/share/jupyter/kernels/$$(basename $$k) $$k*; done
	@# Copied by hand by an install before the wheel carried it (the unit names the wheel's).
	@rm -f $(PREFIX)/etc/jupyterhub_config.py
	@$(HUB_VENV)/bin/aifactory-site check $(SITE) >/dev/null && install -D -m 644 $(SITE) /etc/aifactory/site.yaml
	@$(HUB_VENV)/bin/aifactory-site install /etc/aifactory/site.yaml --hub-user $(HUB_USER) --hub-home $(STATE) \
	  --users-group $(USERS_GROUP) --admins-group $(ADMINS_GROUP) | { grep -v '^as it was' || true; }
	@# Where systemd is not PID 1, the demo's hub keeps its pid and log in root's folders.
	@install -d -o root -g root -m 755 $(dir $(HUB_PID))
	@install -d -o root -g adm -m 750 $(dir $(HUB_LOG))
	@echo "installed: $(HUB_VENV) (the hub), $(VENV) (the users' stack: JupyterLab, Dask), $(DEV_VENV) (the tests), $(CHP)"

$(PREFIX)/.system:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt: installing $$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@command -v npm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	@mkdir -p $(PREFIX) && chmod 755 $(PREFIX) && touch $@

# Each install's lock: every package, exact, from pyproject.toml's ranges for the wheel with its
# extras (none: the hub's) and the demo's builds; made again when those change.
# A lock names the wheel by its path: one made by another clone (another directory, such as the
# check's copy) names a wheel that is not here, and is made again.
STALE_LOCKS := $(foreach v,$(HUB_VENV) $(VENV) $(DEV_VENV),$(shell grep -qsF 'file://$(CURDIR)/$(WHEEL)' $(v)/.lock.txt || echo $(v)/.lock.txt))
$(STALE_LOCKS): FORCE
.PHONY: FORCE
$(HUB_VENV)/.lock.txt: EXTRAS :=
$(VENV)/.lock.txt: EXTRAS := [lab]
$(DEV_VENV)/.lock.txt: EXTRAS := [lab,test]
%/.lock.txt: pyproject.toml $(CONSTRAINTS) | dist
	@test -x $*/bin/python || /usr/bin/python3 -m venv $*
	@printf 'pip\naifactory-workbench$(EXTRAS) @ file://$(CURDIR)/$(WHEEL)\n' | $(UV) pip compile - --quiet --no-header \
	  --python $*/bin/python $(UV_FROM) -o $@

# The venv $(1) with exactly its lock's packages (what an older install left goes) and the wheel
# just built. uv links each file from its cache, so a second venv of the same packages costs little;
# the hub's venv has copies of its own: a linked file is one file with the users' stack's (root's
# helpers run the hub's).
# The hub's and the users' venvs get their bytecode compiled, as pip does: no one who runs them
# may write it there, so every import would compile again (root, who runs the tests, writes its own).
sync = $(UV) pip sync --quiet --python $(1)/bin/python $(UV_FROM) --reinstall-package aifactory-workbench $(1)/.lock.txt

# `make dev`: the venv (python3's own), uv into it (from PyPI, in pyproject.toml's range), then the
# package editable from the working tree with both extras, from the same wheel folder and builds
# as `make install` (with no wheel folder, from PyPI alone: torch's CUDA build). Made again when
# pyproject.toml or the constraints change, or a package folder's list of files (the links are
# files': a new module needs its own). The data files the wheel puts under a venv's prefix (the
# site kernel, Jupyter's settings), which an editable install leaves out, are copied in each time
# (.ci/dev-data-files).
dev: $(DEV_ENV)/.ready
	@$(DEV_ENV)/bin/python .ci/dev-data-files $(DEV_ENV)

$(DEV_ENV)/.ready: pyproject.toml $(CONSTRAINTS) $(PACKAGE_DIRS)
	@test -x $(DEV_ENV)/bin/python || /usr/bin/python3 -m venv $(DEV_ENV)
	@test -x $(DEV_ENV)/bin/uv || $(DEV_ENV)/bin/python -m pip install --quiet "$$($(DEV_ENV)/bin/python -c \
	  'import tomllib; print(*[d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if d.startswith("uv")])')"
	@$(DEV_ENV)/bin/uv pip install --quiet --python $(DEV_ENV)/bin/python $(if $(wildcard $(WHEELS)),$(UV_FROM)) \
	  --config-setting editable_mode=strict --reinstall-package aifactory-workbench --editable '.[lab,test]'
	@touch $@
	@echo "$(DEV_ENV): the package editable from $(CURDIR), with the lab and test extras; make unit, make lint run there"

# npm ci: exactly the packages of the committed package-lock.json (its errors shown, its chatter not).
$(LABEXT_PACKAGES): $(LABEXT)/package-lock.json $(SYSTEM)
	@cd $(LABEXT) && npm ci --loglevel=error --no-audit --no-fund >/dev/null
	@touch $@

# The builder runs through the build venv's jupyter (its JupyterLab's versions are the shared
# ones); its output is shown only when it fails.
$(LABEXT_BUILT): $(LABEXT_SOURCES) $(LABEXT_PACKAGES) | $(BUILD_ENV)/.ready
	@out=$$(cd $(LABEXT) && PATH=$(CURDIR)/$(BUILD_ENV)/bin:$$PATH npm run build 2>&1) || { echo "$$out"; exit 1; }
	@test -s $@ && touch $@

# JupyterLab as pyproject.toml requires it (one home for its range), and uv, which builds.
$(BUILD_ENV)/.ready: pyproject.toml $(PREFIX)/.system
	@test -x $(BUILD_ENV)/bin/python || python3 -m venv $(BUILD_ENV)
	@$(BUILD_ENV)/bin/python -c 'import re, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  print(*[d for d in p["dependencies"] + sum(p.get("optional-dependencies", {}).values(), []) \
	    if re.match(r"jupyterlab[<>=~ ]", d)], sep="\n"); print("uv")' > $(BUILD_ENV)/requirements.txt
	@out=$$($(BUILD_ENV)/bin/pip install --quiet -r $(BUILD_ENV)/requirements.txt 2>&1) || { echo "$$out"; exit 1; }
	@touch $@

# The sdist, then the wheel built from it (so the sdist is proven to hold all, the lab extension
# included); a wheel installs with no Node. Built again each time: uv takes a few seconds.
dist: $(LABEXT_BUILT)
	@rm -rf dist
	@$(BUILD_ENV)/bin/uv build --quiet --out-dir dist . 2>&1 | { grep -v '^warning: Built' || true; }
	@test -s $(WHEEL) || { echo "no $(WHEEL)"; exit 1; }

# The lab extension's unit tests (jest), of its logic that needs no browser, and of the hub pages'
# (hub/js/, spawners/js/: plain JavaScript the pages carry inline, linted with the same tools).
labextension-test: $(LABEXT_PACKAGES)
	@cd $(LABEXT) && npm test --silent

$(CHP): $(PREFIX)/.system
	@mkdir -p $(NODE_DIR)
	@npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) configurable-http-proxy@5 >/dev/null
	@test -x $@ && touch $@

# A local OpenID Connect provider (npm's certified oidc-provider): the tests' and a demo's
# stand-in for a centre's identity provider. ES modules resolve from the script's folder.
$(OIDC): cluster/oidc/provider.mjs $(CHP)
	@test -d $(NODE_DIR)/node_modules/oidc-provider || \
	  npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) oidc-provider@9 >/dev/null
	@install -m 644 $< $@

# axe-core (npm): the browser tests check the hub's pages for accessibility with it.
$(AXE): $(CHP)
	@npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) axe-core@4 >/dev/null
	@test -s $@ && touch $@

cluster-start:
	@bash $(CLUSTER) start

cluster-stop:
	@bash $(CLUSTER) stop

# What the demo's proxy and hub read: the https front's certificates, internal ones that name
# users' origins, the workshop command's token.
demo-files: install cluster-start
	@bash cluster/tls/make-demo-certs.sh $(TLS_DIR) $(DEMO_HOST) $(HUB_USER)
	@# The demo hub's internal certificates, made by an older install, name no user's origin
	@# (the hub refuses them): they are the demo's own, so made again, while neither the hub nor
	@# the proxy runs.
	@crt=$(DEMO_INTERNAL_SSL)/hub-internal/hub-internal.crt; if $(HUB_RUNNING) || $(PROXY_RUNNING); then :; \
	  elif [ -f $$crt ] && ! openssl x509 -in $$crt -noout \
	    -checkhost "user.$(DEMO_HOST)" 2>/dev/null | grep -q "does match"; then \
	  echo "demo: making the hub's internal certificates again (they named no user's origin)"; \
	  rm -rf $(DEMO_INTERNAL_SSL); fi
	@test -s $(WORKSHOP_TOKEN) || (umask 027 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > $(WORKSHOP_TOKEN) \
	  && chgrp $(HUB_USER) $(WORKSHOP_TOKEN))

# The proxy unit's own line (`aifactory-site proxy`), as systemd would run it; then until it
# listens. A hub of an older start, with the proxy as its child, is left as it is.
proxy-start: demo-files
	@if $(PROXY_RUNNING); then echo "proxy already running (pid $$pid)"; \
	elif $(HUB_RUNNING); then echo "the hub (pid $$pid) runs its proxy as its child: make hub-stop hub-start"; else \
	  $(HUB_VENV)/bin/aifactory-site start-proxy --log $(HUB_LOG) --pid $(PROXY_PID) || exit 1; \
	  url=$(PUBLIC_URL); url=$${url:-http://127.0.0.1:8000/}; for i in $$(seq 60); do \
	    curl -s --cacert $(TLS_DIR)/ca.crt -o /dev/null $$url && break; sleep 0.25; done; \
	  $(PROXY_RUNNING) || { echo "the proxy did not start; see $(HUB_LOG)"; tail -20 $(HUB_LOG); exit 1; }; fi

# The hub too, as the hub's unit is PartOf the proxy's: a proxy started again has no routes, and
# the hub's start gives them back.
proxy-stop: hub-stop
	@if $(PROXY_RUNNING); then $(call stop_process,proxy); fi; rm -f $(PROXY_PID)

hub-start: proxy-start
	@# The installed unit's own lines (the database's upgrade, then the hub), as systemd would
	@# run them: here it is not PID 1.
	@if $(HUB_RUNNING); then echo "hub already running (pid $$pid)"; else \
	  $(HUB_VENV)/bin/aifactory-site start-hub --log $(HUB_LOG) --pid $(HUB_PID) || exit 1; fi
	@url=$(PUBLIC_URL); url=$${url:-http://127.0.0.1:8000/}; \
	  for i in $$(seq 60); do curl -fs --cacert $(TLS_DIR)/ca.crt -o /dev/null $${url}hub/health && break; sleep 1; done; \
	  curl -fsS --cacert $(TLS_DIR)/ca.crt -o /dev/null $${url}hub/health || { echo "hub did not answer at $$url; see $(HUB_LOG)"; tail -20 $(HUB_LOG); exit 1; }

# The hub alone: its proxy, on its own, keeps every open connection (`make stop` stops both).
hub-stop:
	@if $(HUB_RUNNING); then $(call stop_process,hub); fi; rm -f $(HUB_PID)

demo: hub-start
	@echo
	@echo "AI Factory Workbench is up: https://$(DEMO_HOST):8000/ (each user's JupyterLab on its own"
	@echo "  origin, https://USER.$(DEMO_HOST):8000/; browsers resolve names under .localhost to this"
	@echo "  machine: from another one, ssh -L 8000:localhost:8000 first)."
	@echo "The demo's certificate authority, to import into the browser: $(TLS_DIR)/ca.crt"
	@echo "Demo logins (user / password / role):"
	@awk '!/^#/ && NF {printf "  %-11s %-15s %s\n", $$1, $$2, $$3}' cluster/users.txt
	@echo "SLURM accounts (projects):"
	@awk '!/^#/ && NF {print "  " $$0}' cluster/accounts.txt
	@echo "Hub log: $(HUB_LOG)    Stop everything: make stop"

stop: hub-stop proxy-stop cluster-stop

# Lint first (ruff, and the import layering), then the cluster: it starts only if it is not
# running, and stops only if this run started it.
test: lint docs labextension-test
	@started=0; if ! bash $(CLUSTER) status >/dev/null 2>&1; then bash $(CLUSTER) start && started=1; fi; \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then bash $(CLUSTER) stop; fi; exit $$rc

# The browser journeys again, their screenshots into docs/screenshots (docs/journeys.md shows them).
JOURNEYS = tests/integration/test_journey.py tests/integration/test_demo_setup.py tests/integration/test_gallery.py \
  tests/integration/test_extend.py::test_from_the_walltime_warning_in_the_browser \
  tests/integration/test_sharing.py::test_a_colleague_works_in_a_shared_session_until_the_share_ends
screenshots:
	@AIFW_ARTIFACTS=$(CURDIR)/docs/screenshots $(MAKE) --no-print-directory test PYTEST_ARGS="$(JOURNEYS)"

# Benchmarks print figures (they are not tests); they need the cluster, not the demo hub.
# Run as modules from the repository, so that they import tests.harness as it is.
bench: install cluster-start
	@$(PY) -m benchmarks.spawn_overhead --runs 5
	@$(PY) -m benchmarks.remote_kernel --runs 5
	@$(PY) -m benchmarks.alternatives_latency --runs 20
	@$(PY) -m benchmarks.scheduler_load --sizes 1 10 50
	@$(PY) -m benchmarks.hub_load --users 50
	@$(PY) -m benchmarks.hub_load --users 50 --db postgresql
	@$(PY) -m benchmarks.analysis --years 10 --workers 2
	@$(PY) -m benchmarks.workshop_burst --seats 50
	@$(PY) -m benchmarks.hub_cost --steps 10 50 100
	@$(PY) -m benchmarks.installs --find-links $(WHEELS)

unit: $(TOOLS_FROM) labextension-test
	@$(TOOLS)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

# The hooks of .pre-commit-config.yaml, on every file: ruff (check and format), mypy on the
# SLURM layer, import-linter's contracts (pyproject.toml): hub -> spawners -> slurm, and the
# job and kernel sides apart; eslint and prettier --check on the lab extension and the pages' scripts.
lint: $(TOOLS_FROM) $(LABEXT_PACKAGES)
	@$(TOOLS)/bin/pre-commit run --all-files --show-diff-on-failure

# The documentation site (docs/, Markdown through MyST), warnings as errors, into build/docs/html.
docs: install
	@$(DEV_VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs build/docs/html
