# Shortcuts for the commands in README.md and docs/.
PYTHON ?= python
DATA ?=

.PHONY: setup lint test test-all demo laptop gpu-check gpu-bundle course app exps readme plots plots-diff

setup:  ## install into the current Python environment (torch first: it pins the CPU/CUDA build)
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install -e . --no-deps

lint:  ## ruff, with the rules in pyproject.toml (CI runs it)
	$(PYTHON) -m ruff check src stages tests scripts benchmarks

test:  ## the fast tests (not marked slow), offline
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -m "not slow"

test-all:  ## every test, as CI runs them: the pipeline end to end, the browser, the Hub path
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest

demo:  ## the pipeline end to end on tiny random models (meaningless scores), in .demo/
	$(PYTHON) scripts/demo.py $(if $(DATA),--data $(DATA)) $(if $(FRESH),--fresh)

# The learning profile (configs/laptop.yaml): a small T5 pretrained here, then fine-tuned, on the real DialogSum.
# LAPTOP_DATA: a local DialogSum (default: ../shared/data/dialogsum when it exists); empty: data.source, the Hub.
# FRESH=1 starts over instead of resuming an interrupted run.
LAPTOP_DATA ?= $(wildcard ../shared/data/dialogsum)
laptop:  ## the pipeline end to end with a small T5 that learns here (about half an hour on 2 cores), in .laptop/
	$(PYTHON) scripts/demo.py --profile laptop $(if $(LAPTOP_DATA),--data $(LAPTOP_DATA)) $(if $(FRESH),--fresh)

# On a GPU machine: the GPU tests, the whole pipeline with a FLAN-T5-base-shaped model, one JSON of figures
# (docs/scaling.md). ARGS=--tiny runs it at the demo's size on a CPU, as CI does.
gpu-bundle:  ## one folder (.bundle/, under 64 MiB) for an air-gapped GPU machine: wheels, data cut, project, run.sh
	$(PYTHON) scripts/gpu_bundle.py $(if $(LAPTOP_DATA),--data $(LAPTOP_DATA)) $(ARGS)

gpu-check:  ## everything that needs a GPU in one command; figures in .gpu-check/gpu-check.json
	$(PYTHON) scripts/gpu_check.py $(if $(LAPTOP_DATA),--data $(LAPTOP_DATA)) $(ARGS)

app:  ## the chatbot on http://127.0.0.1:7860 over models/, else .laptop/ or .demo/ (WORKSPACE=.laptop; MODELS=folder; HOST=0.0.0.0 PORT=8080)
	$(PYTHON) -m summarizer.app $(if $(MODELS),--models $(MODELS)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(if $(WORKSPACE),--workspace $(WORKSPACE))

# The columns people compare across experiments: learning rates, batch sizes, ROUGE-L and toxicity per variant
# (plain `dvc exp show` has over 1,600 columns).
EXP_COLUMNS = ^Experiment$$|^Created$$|^(params\.yaml:)?(lr|(lora|prompt_tuning|ppo)\.lr|(full|lora|prompt_tuning|ppo)\.batch_size)$$|^metrics/eval/(base|full|lora|prompt_tuning|ppo)\.json:(per_reference\.rougeL|toxicity\.mean)\.mean$$

course:  ## the course's settings (configs/course.yaml) as one DVC experiment named course (GPU + Hub)
	$(PYTHON) scripts/exp_profile.py configs/course.yaml $(ARGS)

exps:  ## experiments side by side, only the columns people compare (ARGS=--csv or --md for a file)
	@$(PYTHON) scripts/which_profile.py
	dvc exp show --drop '.*' --keep '$(EXP_COLUMNS)' $(ARGS)

readme:  ## copy the results table the report stage wrote (metrics/README.md) into README.md and docs/results.md
	$(PYTHON) scripts/readme_table.py

plots:  ## DVC's interactive plots in dvc_plots/index.html, Vega inlined: they render offline
	$(PYTHON) scripts/plots_offline.py

plots-diff:  ## the same against a revision (REV=main): dvc plots diff with the offline template
	$(PYTHON) scripts/plots_offline.py --diff $(REV)
