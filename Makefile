# Every target bootstraps its own virtual environment; nothing needs to be installed first
# but python3 (with venv) and, for the full test suite, root or the Debian packages below.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# command:package, each package installed by `make tools` when its command is missing. kubectl
# (1.27 or newer, for kustomize v5) comes with the machine image: Debian's kubernetes-client is
# kubectl 1.20, whose kustomize v2 cannot render deploy/kubernetes/.
DEBIAN_TOOLS := promtool:prometheus amtool:prometheus-alertmanager chromium:chromium \
	systemd-analyze:systemd

.PHONY: demo test lint tools bench dashboards alerts deploy clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/saas-backup-exporter demo

# promtool, amtool, prometheus and alertmanager come from Debian's packages, and so do the
# headless chromium that tests/test_status_page.py drives and systemd-analyze (deploy/systemd/).
# Installed here when missing and possible; under CI=true a test that needs them fails rather
# than skips.
tools:
	@missing=""; \
	for pair in $(DEBIAN_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends $$missing >/dev/null; \
		else \
			echo "warning: missing and cannot install the Debian packages:$$missing" >&2; \
		fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Two workers, each taking whole test modules (module fixtures stay shared): TEST_WORKERS=0 runs
# the suite in this process.
TEST_WORKERS ?= 2
test: $(STAMP) tools lint
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# The generated JSON is committed; tests/test_dashboards.py fails when it drifts from the code.
dashboards: $(STAMP)
	$(PY) dashboards/generate.py

# So are the generated rules (thresholds in alerts/thresholds.py, shared with the dashboards);
# tests/test_alert_rules.py fails when they drift.
alerts: $(STAMP)
	$(PY) alerts/generate.py

# The Kubernetes objects made from those two, committed too (deploy/kubernetes/generate.py);
# tests/test_deploy_kubernetes.py fails when they drift.
deploy: alerts dashboards
	$(PY) deploy/kubernetes/generate.py

bench: $(STAMP)
	$(PY) bench/bench_scrape.py
	$(PY) bench/bench_crawl.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
