# Two set-up commands for a fresh machine (see README): `make search` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Tests read datasets from here; the real MNIST sits in ../shared/data beside the checkout.
export GROWNET_DATA ?= $(abspath ../shared/data)

.PHONY: install search demo test lint bench clean

$(BIN)/grownet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The test tools (pytest, ruff, the PostgreSQL driver, ONNX): only `make test` needs them, so
# `make search` on a fresh machine does not wait for them.
$(VENV)/dev.stamp: $(BIN)/grownet
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/grownet

# The main job: a growth search on the embedded digits (offline, a few minutes on 2 cores).
search: install
	$(BIN)/grownet search

demo: install
	$(BIN)/grownet --help
	$(BIN)/grownet graph lenet2n -o n=5
	$(BIN)/grownet graph cifar_resnet -o depth=56 --json runs/demo/resnet56.graph.json
	$(BIN)/grownet train --model convnet --dataset digits --max-iter 300 --test-interval 100 \
		--batch-size 32 --base-lr 0.1 --name demo-digits --overwrite

test: $(VENV)/dev.stamp
	$(BIN)/ruff check grownet tests
	$(BIN)/pytest -q

bench: install
	$(BIN)/grownet bench executor --depth 56 --batch 64

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
