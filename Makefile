# Two commands: `make run` (the default study, then the report) and `make test` (the whole suite).
# Both create .venv if missing and install the pinned stack from constraints.txt; both are idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist
STUDY ?= demo

.PHONY: run test test-fast setup data browser report docs clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,robustness,tensorboard,mlflow,export]'
	touch $@

# The embedded default dataset: Debian's dataset-fashion-mnist where apt-get and root are available;
# otherwise the loader downloads it with data.download=true, or says how to get it.
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
		|| echo "warning: could not install dataset-fashion-mnist; runs will need data.download=true"; \
	else echo "note: $(FMNIST) missing and apt-get unavailable (or not root): runs will need data.download=true"; fi

# The report's browser test (tests/test_report_glance.py) needs Chromium: Debian's package where apt-get and
# root are available, as `data` installs the dataset; otherwise that one test is skipped and says how to get it.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
		|| echo "warning: could not install chromium; the report's browser test will be skipped"; \
	else echo "note: no Chromium, and apt-get unavailable (or not root): the report's browser test will be skipped"; fi

# Your runs' report goes to results/report (git-ignored), never into the committed report/.
run: setup data
	$(PY) -m archbench -m experiment=$(STUDY)
	$(PY) -m archbench.report results_dir=results/runs out=results/report

# Rebuilds the committed report from the committed reference records: the only command that
# writes report/.
report: setup
	$(PY) -m archbench.report results_dir=results/reference out=report

# Two workers, one test file each at a time: on 2 cores the suite spends much of its time in
# single-threaded imports and subprocess start-up, which a second worker overlaps.
test: setup data browser
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup data browser
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

docs: setup
	$(PY) scripts/gen_model_docs.py

clean-venv:
	rm -rf $(VENV)
