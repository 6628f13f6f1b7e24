# AI Factory Workbench: the README's two commands are `make demo` and `make test`.
# Everything is installed under $(PREFIX), readable by the users whose jobs run from it
# (this machine's own Python lives under /root, which they cannot reach).
PREFIX     ?= /opt/aifactory
VENV       := $(PREFIX)/venv
NODE_DIR   := $(PREFIX)/node
STATE      ?= /var/lib/aifactory
SITE       ?= $(CURDIR)/config/site.yaml
PY         := $(VENV)/bin/python
CHP        := $(NODE_DIR)/node_modules/.bin/configurable-http-proxy
OIDC       := $(NODE_DIR)/oidc-provider.mjs
AXE        := $(NODE_DIR)/node_modules/axe-core/axe.min.js
CLUSTER    := cluster/minicluster.sh
# The demo hub's pid and log: written by root, in folders only root may change (the hub
# account owns $(STATE): a link it planted there would have root write anywhere).
HUB_PID    := /run/aifactory-hub/hub.pid
HUB_LOG    := /var/log/aifactory/hub.log
# True while $(HUB_PID) names a jupyterhub process of $(HUB_USER), and sets $$pid: a stale
# file's pid may belong to anyone by now, and root kills no one else.
HUB_RUNNING = pid=$$(cat $(HUB_PID) 2>/dev/null) && case "$$pid" in ''|*[!0-9]*) false;; esac \
  && [ "$$(awk '/^Uid:/ {print $$2}' /proc/$$pid/status 2>/dev/null)" = "$$(id -u $(HUB_USER))" ] \
  && tr '\0' ' ' </proc/$$pid/cmdline | grep -q '/bin/jupyterhub '
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
LIBEXEC    := $(PREFIX)/libexec
# The hub runs unprivileged: as $(HUB_USER), from copies it can read.
AS_HUB     := setpriv --reuid=$(HUB_USER) --regid=$(HUB_USER) --init-groups
SYSTEM_PACKAGES := python3 python3-venv python3-dev sudo nodejs curl chromium

.PHONY: install hub-user demo test unit screenshots bench stop hub-start hub-stop cluster-start cluster-stop lint docs clean-state

install: $(VENV)/.deps $(CHP) $(OIDC) $(AXE) hub-user
	@# setuptools builds from build/: a module removed from the tree must not linger there.
	@rm -rf build *.egg-info
	@$(VENV)/bin/pip install --quiet --no-deps --force-reinstall . >/dev/null
	@rm -rf build *.egg-info
	@# The site kernel's exact packages, published with it (kernel.json names this file).
	@install -d $(VENV)/share/aifactory && $(VENV)/bin/pip freeze --exclude aifactory-workbench > $(VENV)/share/aifactory/kernel.lock
	@install -D -m 644 jupyterhub_config.py $(PREFIX)/etc/jupyterhub_config.py
	@# The wheel carries JupyterLab's side (server extensions, settings, the lab extension, the
	@# site's kernelspecs, the example notebooks: pyproject.toml's data-files). An install before the one namespace copied
	@# the server's settings here by hand: they would switch on modules that no longer exist.
	@rm -f $(VENV)/etc/jupyter/jupyter_server_config.json
	@# Only the site's kernels (and a user's own) are offered: not ipykernel's stock "Python 3".
	@rm -rf $(VENV)/share/jupyter/kernels/python3
	@# What users' Dask reads: written by root, in a folder only root may change.
	@$(VENV)/bin/aifactory-site install-dask $(SITE) >/dev/null
	@# Dask from a login shell on this machine: reachable from compute nodes, TLS, private scratch.
	@sed -e 's|@VENV@|$(VENV)|g' -e 's/@USERS_GROUP@/$(USERS_GROUP)/g' config/profile.d/aifactory-dask.sh.in \
	  > /etc/profile.d/.aifactory-dask.sh && chmod 644 /etc/profile.d/.aifactory-dask.sh \
	  && mv /etc/profile.d/.aifactory-dask.sh /etc/profile.d/aifactory-dask.sh
	@echo "installed: $(VENV) (hub, JupyterLab, Dask), $(CHP)"

# The hub's own system user, allowed by sudo to submit and cancel jobs as members of
# $(USERS_GROUP) (not of $(ADMINS_GROUP)) and to ask a root-owned helper whether a password is
# right, and nothing else. It reads no password hashes: out of `shadow`, where it once was.
hub-user: $(PREFIX)/.system
	@for g in $(USERS_GROUP) $(ADMINS_GROUP); do getent group $$g >/dev/null || groupadd --system $$g; done
	@id -u $(HUB_USER) >/dev/null 2>&1 || useradd --system --home-dir $(STATE) --shell /usr/sbin/nologin $(HUB_USER)
	@if id -nG $(HUB_USER) | tr ' ' '\n' | grep -qx shadow; then gpasswd -d $(HUB_USER) shadow >/dev/null; fi
	@# The password helper, root's: hub/check_password.py in the venv's Python, isolated (-I), for
	@# the groups whose members may sign in.
	@tmp=$$(mktemp) && printf '#!%s -I\n# For the hub, through sudo: is this password right? (hub/check_password.py)\nfrom aifactory_workbench.hub.check_password import main\n\nraise SystemExit(main(%s))\n' \
	    '$(PY)' '["$(USERS_GROUP)", "$(ADMINS_GROUP)"]' > $$tmp \
	  && install -d -o root -g root -m 755 $(LIBEXEC) && install -o root -g root -m 755 $$tmp $(LIBEXEC)/aifactory-check-password; rm -f $$tmp
	@env=$$(cd $(CURDIR) && /usr/bin/python3 -c 'from job import JOB_ENVIRONMENT; print(" ".join(JOB_ENVIRONMENT))') \
	  && tmp=$$(mktemp) && sed -e 's/@HUB_USER@/$(HUB_USER)/g' -e 's/@USERS_GROUP@/$(USERS_GROUP)/g' \
	    -e 's/@ADMINS_GROUP@/$(ADMINS_GROUP)/g' -e 's|@LIBEXEC@|$(LIBEXEC)|g' \
	    -e "s/@JOB_ENVIRONMENT@/$$env/" config/sudoers.in > $$tmp \
	  && visudo -cqf $$tmp && install -m 440 $$tmp /etc/sudoers.d/aifactory-hub; rm -f $$tmp
	@install -d -o root -g root -m 755 $(dir $(HUB_PID)) $(dir $(HUB_LOG))
	@install -d -o $(HUB_USER) -g $(HUB_USER) -m 750 $(STATE) && chown -R $(HUB_USER): $(STATE)
	@# The gallery of published notebooks: the hub writes it, every user's job reads it.
	@install -d -m 755 /srv/aifactory && install -d -o $(HUB_USER) -g $(HUB_USER) -m 755 /srv/aifactory/gallery

$(PREFIX)/.system:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt: installing $$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@command -v npm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	@mkdir -p $(PREFIX) && chmod 755 $(PREFIX) && touch $@

$(VENV)/.deps: pyproject.toml $(PREFIX)/.system
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --upgrade pip
	@$(VENV)/bin/pip install --quiet ".[test]"
	@touch $@

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

hub-start: install cluster-start
	@mkdir -p $(STATE)
	@bash cluster/tls/make-demo-certs.sh $(TLS_DIR) $(DEMO_HOST) $(HUB_USER)
	@# The demo hub's internal certificates, made by an older install, name no user's origin
	@# (the hub refuses them): they are the demo's own, so made again, while no hub runs.
	@crt=$(DEMO_INTERNAL_SSL)/hub-internal/hub-internal.crt; if $(HUB_RUNNING); then :; elif [ -f $$crt ] && ! openssl x509 -in $$crt -noout \
	    -checkhost "user.$(DEMO_HOST)" 2>/dev/null | grep -q "does match"; then \
	  echo "demo: making the hub's internal certificates again (they named no user's origin)"; \
	  rm -rf $(DEMO_INTERNAL_SSL); fi
	@test -s $(WORKSHOP_TOKEN) || (umask 027 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > $(WORKSHOP_TOKEN) \
	  && chgrp $(HUB_USER) $(WORKSHOP_TOKEN))
	@# As at a site: the site file checked, the hub's database backed up and upgraded where an
	@# older release made it (as the hub's account), then the hub.
	@if $(HUB_RUNNING); then echo "hub already running (pid $$pid)"; else \
	  $(VENV)/bin/aifactory-site check $(SITE) || exit 1; \
	  install -D -m 644 $(SITE) /etc/aifactory/site.yaml; \
	  (cd $(STATE) && HOME=$(STATE) $(AS_HUB) $(VENV)/bin/aifactory-site upgrade /etc/aifactory/site.yaml) || exit 1; \
	  cd $(STATE); HOME=$(STATE) AIFACTORY_SITE_CONFIG=/etc/aifactory/site.yaml setsid $(AS_HUB) \
	    $(VENV)/bin/jupyterhub -f $(PREFIX)/etc/jupyterhub_config.py >>$(HUB_LOG) 2>&1 </dev/null & echo $$! > $(HUB_PID); fi
	@url=$$($(VENV)/bin/aifactory-site show $(SITE) | sed -n 's|^  public_url: ||p'); url=$${url:-http://127.0.0.1:8000/}; \
	  for i in $$(seq 60); do curl -fs --cacert $(TLS_DIR)/ca.crt -o /dev/null $${url}hub/health && break; sleep 1; done; \
	  curl -fsS --cacert $(TLS_DIR)/ca.crt -o /dev/null $${url}hub/health || { echo "hub did not answer at $$url; see $(HUB_LOG)"; tail -20 $(HUB_LOG); exit 1; }

hub-stop:
	@if $(HUB_RUNNING); then kill $$pid; \
	  for i in $$(seq 40); do kill -0 $$pid 2>/dev/null || break; sleep 0.25; done; echo "hub stopped"; fi; rm -f $(HUB_PID)

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

stop: hub-stop cluster-stop

# Lint first (ruff, and the import layering), then the cluster: it starts only if it is not
# running, and stops only if this run started it.
test: lint docs
	@started=0; if ! bash $(CLUSTER) status >/dev/null 2>&1; then bash $(CLUSTER) start && started=1; fi; \
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then bash $(CLUSTER) stop; fi; exit $$rc

# The browser journeys again, their screenshots into docs/screenshots (docs/journeys.md shows them).
JOURNEYS = tests/integration/test_journey.py tests/integration/test_demo_setup.py tests/integration/test_gallery.py \
  tests/integration/test_sharing.py::test_a_colleague_works_in_a_shared_session_until_the_share_ends
screenshots:
	@AIFW_ARTIFACTS=$(CURDIR)/docs/screenshots $(MAKE) --no-print-directory test PYTEST_ARGS="$(JOURNEYS)"

# Benchmarks print figures (they are not tests); they need the cluster, not the demo hub.
# Run as modules from the repository, so that they import tests.harness as it is.
bench: install cluster-start
	@$(PY) -m benchmarks.spawn_overhead --runs 5
	@$(PY) -m benchmarks.scheduler_load --sizes 1 10 50
	@$(PY) -m benchmarks.hub_load --users 50
	@$(PY) -m benchmarks.hub_load --users 50 --db postgresql
	@$(PY) -m benchmarks.analysis --years 10 --workers 2
	@$(PY) -m benchmarks.workshop_burst --seats 30

unit: install
	@$(VENV)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

# ruff, then import-linter's contracts (pyproject.toml): hub -> spawners -> slurm, and the
# job and kernel sides apart.
lint: install
	@$(VENV)/bin/ruff check .
	@PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --no-cache

# The documentation site (docs/, Markdown through MyST), warnings as errors, into build/docs/html.
docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs build/docs/html
