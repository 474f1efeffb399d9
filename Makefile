# gridfuse: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
TORCH_PIN ?= torch==2.13.0
SNAKEMAKE := $(BIN)/snakemake

.PHONY: venv demo test lint bench report clean-results dryrun slurm-test

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: a CPU build where one is provided locally; keeps pip from pulling CUDA wheels
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" || $(BIN)/python -m pip install --quiet "torch>=2.4"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(SNAKEMAKE) --cores $(CORES) --configfile config.yaml --profile profiles/local
	$(SNAKEMAKE) --cores 1 --configfile config.yaml --report results/report.html

dryrun: venv
	$(SNAKEMAKE) -n --cores 1 --configfile config.yaml

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# A real single-node SLURM on localhost (root; Debian packages), then the SLURM workflow test.
slurm-test: venv
	bash tests/slurm/setup_slurm.sh start
	GRIDFUSE_SLURM=1 $(BIN)/python -m pytest tests/test_slurm.py -v -s $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/ruff format --check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint --configfile config.yaml

bench: venv
	mkdir -p results/benchmarks
	for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-results:
	rm -rf results .snakemake
