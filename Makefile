# Two set-up commands for a fresh machine (see README): `make search` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Tests read datasets from here; the real MNIST sits in ../shared/data beside the checkout.
export GROWNET_DATA ?= $(abspath ../shared/data)

.PHONY: install search demo test lint bench clean

# PyPI's torch wheels bring the CUDA libraries (a 6 GB venv); on a machine without an NVIDIA
# GPU, `make install CPU=1` (or TORCH_INDEX=<a PyTorch wheel index>) takes PyTorch's CPU-only
# wheels first, about 1 GB. Not the default: that index is not PyPI, and some machines reach
# only PyPI.
TORCH_INDEX ?= $(if $(CPU),https://download.pytorch.org/whl/cpu)

$(BIN)/grownet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	@[ -n "$(TORCH_INDEX)" ] || command -v nvidia-smi >/dev/null || echo "no NVIDIA GPU" \
		"found: 'rm -rf $(VENV) && make install CPU=1' installs CPU-only PyTorch (1 GB, not 6)"
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
	rm -rf $(VENV) .pytest_cache .ruff_cache  # never runs/: only a user deletes their runs
