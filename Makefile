# The two commands of the README: `make demo` and `make test`. Both set up .venv first (once).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_output

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: a plain `torch` would pull a CUDA build of several GB.
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	# KU Leuven's liver and lesion weights, converted from their PyPI wheel (cached in ~/.cache/liverfusion)
	$(BIN)/liverfusion import-weights pyliverlesionseg
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	rm -rf $(DEMO)
	$(BIN)/liverfusion phantom --out $(DEMO)/phantom --cases 1 --seed 42 --protocol ct-mri
	$(BIN)/liverfusion segment --input ct=$(DEMO)/phantom/case_000/ct.nii.gz \
		--input mri=$(DEMO)/phantom/case_000/mri.nii.gz --out $(DEMO)/result
	$(BIN)/liverfusion evaluate --pred $(DEMO)/result/segmentation.nii.gz \
		--truth $(DEMO)/phantom/case_000/label_ct.nii.gz | $(BIN)/python -c \
		"import json,sys; m=json.load(sys.stdin); print('against the phantom truth: liver Dice %.3f, tumor Dice %.3f' % (m['liver']['dice'], m['tumor']['dice']))"

lint: setup
	$(BIN)/ruff check liverfusion LiverFusionSeg LiverFusionSynth Testing

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
