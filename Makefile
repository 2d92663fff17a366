# rascore: `make demo` runs the main job on embedded defaults; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the tests run for real: dciodvfy/dcentvfy (dicom3tools), dcmdump/storescu (dcmtk),
# the broker, the production database and a PACS (redis-server, postgresql, orthanc), and the
# browser the dashboard test drives (chromium).
SYSTEM_PACKAGES := dicom3tools dcmtk openssl redis-server postgresql orthanc orthanc-webviewer orthanc-dicomweb chromium
PYTEST_WORKERS ?= 2

.PHONY: demo test venv system-packages traincascade lint typecheck architecture pytest gallery bench constraints clean

venv: $(BIN)/.installed

# constraints.txt pins what CI tested; pyproject.toml says what the project needs.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

system-packages:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# OpenCV 3.4's opencv_traincascade, built once from source and cached (scripts/build-traincascade.sh).
traincascade:
	@bash scripts/build-traincascade.sh >/dev/null

demo: venv
	$(BIN)/rascore phantom --out demo/phantoms --count 4 --seed 2026 --gallery demo/phantom-gallery.png
	$(BIN)/rascore demo --phantoms demo/phantoms --out demo --count 2
	@echo "demo: phantoms and truth.json in demo/phantoms (contact sheet demo/phantom-gallery.png);"
	@echo "      the node scored two of them; what it sent back (SR, SC + PNG, GSPS) is in demo/received"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]; ARCHITECTURE.md explains them).
architecture: venv
	$(BIN)/lint-imports --no-cache

pytest: venv system-packages traincascade
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

test: lint typecheck architecture pytest

gallery: venv
	$(BIN)/rascore phantom --out build/gallery --count 12 --seed 2026 --jobs 2 --gallery docs/phantom-gallery.png

# Each script's JSON goes to build/bench; a failed one shows as a note in the summary (goals beside
# the figures, issue 13). About 10 minutes, most of it the node at 1 and 2 images/s.
BENCH := build/bench
bench: venv
	mkdir -p $(BENCH)
	-$(BIN)/python benchmarks/phantom.py > $(BENCH)/phantom.json
	-$(BIN)/python benchmarks/score.py > $(BENCH)/score.json
	-$(BIN)/python benchmarks/decode.py > $(BENCH)/decode.json
	-$(BIN)/python benchmarks/ingest.py > $(BENCH)/ingest.json
	-$(BIN)/python benchmarks/node.py > $(BENCH)/node.json
	$(BIN)/python benchmarks/summary.py --dir $(BENCH)

constraints: venv
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf build demo .pytest_cache .mypy_cache .ruff_cache
