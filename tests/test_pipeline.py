"""End to end: the demo runs `dvc repro` on tiny models in its own workspace and leaves the project untouched."""

import hashlib
import json
import os
import re
import subprocess
import sys
import time

from pathlib import Path

import psutil
import pytest
import yaml

from helpers import ROOT, with_this_python
from summarizer.io import read_json

pytestmark = pytest.mark.slow  # the demo pipeline through dvc repro, several minutes


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _run_demo(work):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/demo.py"), "--workspace", str(work)],
                          capture_output=True, text=True, timeout=1200, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _dvc_env():
    """This interpreter's environment for `dvc` and the stage commands it runs, offline."""
    return with_this_python(os.environ | {"HF_HUB_OFFLINE": "1"})


# Stage hub_revisions is always_changed (it asks the Hub whether a branch moved on every repro, summarizer.hub): it
# is the one stage `dvc status` lists and `dvc repro` runs when nothing else changed.
ALWAYS = "hub_revisions"


def _up_to_date(work) -> bool:
    status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], work) or "{}")
    return set(status) <= {ALWAYS}


def _ran(output: str) -> list[str]:
    """The stages a `dvc repro` ran, hub_revisions aside."""
    return [line.split("'")[1] for line in output.splitlines()
            if line.startswith("Running stage") and f"'{ALWAYS}'" not in line]


def _run(cmd, cwd, **kwargs):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=_dvc_env(), **kwargs)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "ws"
    before = {name: _digest(ROOT / name) for name in ("params.yaml", "dvc.lock")}
    proc = _run_demo(work)
    after = {name: _digest(ROOT / name) for name in ("params.yaml", "dvc.lock")}
    return work, proc, before, after


def test_demo_leaves_project_untouched(demo):
    _, _, before, after = demo
    assert before == after


def test_demo_says_scores_are_meaningless(demo):
    _, proc, _, _ = demo
    assert proc.stdout.count("MEANINGLESS") >= 2


def test_demo_runs_every_stage(demo):
    work, _, _, _ = demo
    assert read_json(work / "metrics/data.json")["rows"] == {"train": 30, "validation": 6, "test": 18}
    assert read_json(work / "metrics/models/base.json")["source"] == "tiny-random"
    assert (work / "data/tokenized/train.jsonl").exists()
    assert (work / "dvc.lock").exists()


def test_second_repro_runs_nothing(demo):
    work, _, _, _ = demo
    assert _up_to_date(work), _run([sys.executable, "-m", "dvc", "status"], work)


GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]


def test_results_shared_through_a_remote(demo, tmp_path):
    """The team workflow (docs/sharing.md): push a run to a (local-folder) remote, clone, `dvc pull`: the clone is
    up to date and `dvc repro` runs nothing. Everything `dvc pull` needs is in git (dvc.lock, .dvc/config, the
    cache: false metrics, plots and curves) or in the remote."""
    work, _, _, _ = demo
    _run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], work)
    _run([*GIT, "add", "-A"], work)
    _run([*GIT, "commit", "-qm", "a run, with its remote"], work)
    _run([sys.executable, "-m", "dvc", "push"], work)
    _run(["git", "clone", "-q", str(work), str(tmp_path / "clone")], tmp_path)
    clone = tmp_path / "clone"
    assert not (clone / "models").exists()  # nothing but git so far
    _run([sys.executable, "-m", "dvc", "pull"], clone)
    assert _up_to_date(clone)
    repro = _run([sys.executable, "-m", "dvc", "repro"], clone)
    assert not _ran(repro), repro
    for path in ("models/ppo/model.safetensors", "data/predictions/base.jsonl", "data/tokenized/train.jsonl"):
        assert (clone / path).read_bytes() == (work / path).read_bytes()


FIGURES = ("rouge_by_variant", "rouge_vs_references", "baseline_heatmap", "loss_curves", "toxicity_before_after",
           "length_box", "length_scatter", "error_categories")


# The only fields of metrics/ that may differ between runs: two JSON keys, and the results table's column.
TIMINGS = {"train_runtime_s", "train_samples_per_s", "step_time_s", "step_samples_per_s"}
TIMING_COLUMN = "training time (s)"


def _without_timing_column(markdown: str) -> str:
    lines, column = [], None
    for line in markdown.splitlines():
        cells = line.split(" | ")
        if TIMING_COLUMN in cells:
            column = cells.index(TIMING_COLUMN)
        if column is not None and line.startswith("| ") and len(cells) > column:
            del cells[column]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _metrics_files(work):
    return {p.relative_to(work).as_posix(): p for p in sorted((work / "metrics").rglob("*")) if p.is_file()}


def test_same_inputs_same_numbers(demo, tmp_path):
    """Two demo runs on one machine: every metrics/ file byte-identical, except the timing fields above. Two runs
    used to differ in every sampled baseline setting and in the training losses (the tiny T5 tokenizer's vocabulary
    changed from run to run)."""
    work, _, _, _ = demo
    _run_demo(tmp_path / "again")
    first, second = _metrics_files(work), _metrics_files(tmp_path / "again")
    assert first.keys() == second.keys() and len(first) > 15
    differ = []
    for name, path in first.items():
        a, b = path.read_bytes(), second[name].read_bytes()
        if a == b:
            continue
        if name.endswith(".json") and _without_timings(json.loads(a)) == _without_timings(json.loads(b)):
            continue
        if name.endswith(".md") and _without_timing_column(a.decode()) == _without_timing_column(b.decode()):
            continue
        differ.append(name)
    assert differ == []
    for name in ("data/tokenized/train.jsonl", "models/base/model.safetensors", "data/baseline/predictions.jsonl"):
        assert (work / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def _whole_or_absent(path):
    """A JSON, JSON Lines or PNG output is either missing or complete (parses to the end)."""
    if not path.exists():
        return True
    data = path.read_bytes()
    if path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    if path.suffix == ".jsonl":
        return data.endswith(b"\n") and all(json.loads(line) for line in data.splitlines())
    return bool(json.loads(data))


def _kill_during(work, stage, started, outs):
    """`dvc repro --force` one stage and SIGKILL it (the whole process group) once ``started(stderr so far)`` is
    true; then each output must be absent or whole. Returns the outputs' bytes from before."""
    import signal
    import threading

    before = {o: (work / o).read_bytes() for o in outs}
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage], cwd=work,
                            env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    stderr = bytearray()
    def read():
        for chunk in iter(lambda: proc.stderr.read1(256), b""):
            stderr.extend(chunk)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 300
    while not started(bytes(stderr)):
        assert proc.poll() is None, f"{stage} ended before it could be killed: {bytes(stderr)[-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert all(_whole_or_absent(work / o) for o in outs), [o for o in outs if not _whole_or_absent(work / o)]
    return before


def test_killed_stages_leave_whole_or_no_outputs_and_rerun_the_same(demo):
    """`kill -9` of `evaluate` during generation and of `report` while it writes its figures: each output is absent
    or whole, and the next `dvc repro` gives byte-identical results."""
    work, _, _, _ = demo
    report = [f"plots/{name}.png" for name in FIGURES] + ["metrics/README.md", "metrics/errors.json"]
    first, table = work / f"plots/{FIGURES[0]}.png", work / "metrics/README.md"
    # killed while the figures are being written: the first is rewritten, the table (written last) is not
    start = time.time()

    def first_figure_rewritten(err):
        try:
            return first.stat().st_mtime > start and not table.exists()
        except FileNotFoundError:
            return False

    before = _kill_during(work, "report", first_figure_rewritten, report)
    assert not table.exists()
    evaluate = ["data/predictions/base.jsonl", "metrics/eval/base.json"]
    # the progress bar of generation (tqdm, on stderr) has appeared
    before |= _kill_during(work, "evaluate@base", lambda err: b"evaluate base:" in err, evaluate)
    assert not (work / "data/predictions/base.jsonl").exists()  # killed before the predictions were written
    # What a user types next. DVC may restore an output it has cached instead of rerunning ("is cached - skipping
    # run, checking out outputs"), so the two stages are then rerun for real as well: same bytes either way.
    _run([sys.executable, "-m", "dvc", "repro"], work)
    assert _up_to_date(work)
    assert {o: (work / o).read_bytes() for o in before} == before
    for stage in ("evaluate@base", "report"):
        ran = _run([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage], work)
        assert f"Running stage '{stage}'" in ran, ran
    assert {o: (work / o).read_bytes() for o in before} == before


def _outputs(work):
    return {p.relative_to(work).as_posix(): p.read_bytes() for folder in ("data", "models", "metrics", "plots")
            for p in sorted((work / folder).rglob("*")) if p.is_file() and p.name != "params.checked"}


BAD_PARAMS = [  # (dotted key or a section to misspell, value, what the one-line message says)
    ("device", "gpu", "params.yaml: device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    ("lora.r", 0, "params.yaml: lora.r must be > 0, got 0"),
    ("lr", "fast", "params.yaml: lr must be a number, got 'fast'"),
    ("ppo.mini_batch_size", 3, "params.yaml: ppo.mini_batch_size must divide ppo.batch_size, got 3 and 4"),
    ("seed", 1.5, "params.yaml: seed must be an integer"),
    ("data.source", "./no/such/folder", "params.yaml: data.source must be an existing folder or a Hub dataset id"),
    ("training", "trainng", "params.yaml: unknown key trainng (did you mean training?"),
]


@pytest.mark.parametrize("target", ["", "prepare_data"], ids=["repro", "repro prepare_data"])
def test_bad_params_fail_before_any_output_is_deleted(demo, target):
    """DVC deletes a stage's outputs before running its command: params checked inside each stage used to cost the
    previous results (data/baseline and metrics/baseline.json deleted), and a misspelled section or a key the chosen
    stage does not read passed silently. The check_params stage runs first and stops `dvc repro` with the key."""
    work, _, _, _ = demo
    original = (work / "params.yaml").read_text()
    before = _outputs(work)
    try:
        for key, value, message in BAD_PARAMS:
            doc = yaml.safe_load(original)
            if key == "training":
                doc[value] = doc.pop(key)  # the section misspelled
            else:
                *parents, last = key.split(".")
                section = doc
                for parent in parents:
                    section = section[parent]
                section[last] = value
            (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            proc = subprocess.run([sys.executable, "-m", "dvc", "repro", *([target] if target else [])], cwd=work,
                                  capture_output=True, text=True, timeout=300, env=os.environ | {"HF_HUB_OFFLINE": "1"})
            output = proc.stdout + proc.stderr
            assert proc.returncode == 255, output
            assert message in output and "Traceback" not in output, output
            assert "Running stage 'check_params'" in output and output.count("Running stage") == 1, output
            assert _outputs(work) == before, f"{key}: outputs changed"
    finally:
        (work / "params.yaml").write_text(original)
    # Fixed: DVC removed the check's output when it failed; it comes back (rerun, or from DVC's run cache) with the
    # same bytes, so no other stage reruns.
    ran = _ran(_run([sys.executable, "-m", "dvc", "repro"], work))
    assert set(ran) <= {"check_params"}, ran
    assert _up_to_date(work)


def test_every_variant_is_evaluated_and_compared(demo):
    work, _, _, _ = demo
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo"):
        assert read_json(work / f"metrics/eval/{variant}.json")["variant"] == variant
    comparison = read_json(work / "metrics/eval/comparison.json")
    assert set(comparison) == {"vs_base", "vs_lead", "vs_constant"}
    assert comparison["vs_base"]["reference"] == "base"
    assert set(comparison["vs_base"]) == {"reference", "full", "lora", "prompt_tuning", "ppo", "ppo_start",
                                          "correction"}
    assert comparison["vs_base"]["full"]["per_reference"]["rouge1"]["p_value"] <= 1
    # every variant, base included, against the baselines made without a model
    assert set(comparison["vs_lead"]) == {"reference", "base", "full", "lora", "prompt_tuning", "ppo", "ppo_start",
                                          "correction"}
    # every variant was generated by the backend params name (auto: CTranslate2 on a CPU), but prompt tuning
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo", "ppo_start"):
        generation = read_json(work / f"metrics/eval/{variant}.json")["generation"]
        assert generation["backend"] == ("transformers" if variant == "prompt_tuning" else "ctranslate2")
        assert 0 <= generation["truncated_share"] <= 1
    references = read_json(work / "metrics/eval/references.json")
    assert set(references) == {"lead", "longest", "constant", "oracle"}
    assert references["oracle"]["uses_references"] is True
    assert references["oracle"]["per_reference"]["rouge1"]["mean"] >= references["lead"]["per_reference"]["rouge1"][
        "mean"]
    base = read_json(work / "metrics/eval/base.json")
    assert references["lead"]["n_dialogues"] == base["n_dialogues"]  # the same test dialogues


def test_ppo_before_after(demo):
    work, _, _, _ = demo
    ppo = read_json(work / "metrics/ppo.json")
    assert ppo["before"]["variant"] == "ppo_start" and ppo["after"]["variant"] == "ppo"
    assert ppo["n_dialogues"] == 6 and ppo["enough_dialogues"] is False  # the sample has 6 test dialogues
    for side in ("before", "after"):
        tox = ppo[side]["toxicity"]["mean"]
        assert 0 <= tox["ci_low"] <= tox["mean"] <= tox["ci_high"] <= 1
    assert {"difference", "ci_low", "ci_high", "p_value"} == set(ppo["difference"]["toxicity"])
    train = read_json(work / "metrics/train/ppo.json")
    assert train["steps"] == 2 and (work / "models/ppo/model.safetensors").exists()  # LoRA + PPO merged
    assert abs(train["kl_first"]) < 1e-3, "before the first update the policy is the LoRA summarizer"
    assert train["reward"].startswith("log P(non-toxic)") and "ROUGE-L" in train["reward"]
    assert train["sampling"].startswith("fixed length")
    assert {"goals", "distinct_kept", "length_ratio", "reward_by_length"} <= set(ppo)
    assert "offensive_share" in ppo["before"] and "offensive_share" in ppo["difference"]
    toxify = read_json(work / "metrics/toxify.json")
    assert toxify["synthetic"] is True and toxify["train"]["toxified"] > 0
    quarters = train["reward_quarters"]
    assert quarters["steps_per_quarter"] == 1 and quarters["difference"]["difference"] == pytest.approx(
        quarters["last"]["mean"] - quarters["first"]["mean"], abs=2e-4)
    assert (work / "dvclive/ppo/plots/metrics/ppo/reward_mean.tsv").exists()
    assert (work / "dvclive/ppo/plots/metrics/ppo/quality_term.tsv").exists()


def test_ppo_params_rerun_only_the_detox_chain(demo):
    work, _, _, _ = demo
    assert _up_to_date(work)
    params = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(_set_ppo_lr(params))
    try:
        status = _run([sys.executable, "-m", "dvc", "status", "--json"], work)
        # evaluate@ppo and compare follow from detoxify's output; check_params reads the whole file
        assert set(json.loads(status)) - {ALWAYS} == {"check_params", "detoxify"}
    finally:
        (work / "params.yaml").write_text(params)


def _set_ppo_lr(text):
    doc = yaml.safe_load(text)
    doc["ppo"]["lr"] = 2.0e-5
    return yaml.safe_dump(doc, sort_keys=False)


def test_every_method_trained_its_steps(demo):
    work, _, _, _ = demo
    overrides = yaml.safe_load((ROOT / "demo/params-overrides.yaml").read_text())
    for method in ("full", "lora", "prompt_tuning"):
        assert read_json(work / f"metrics/train/{method}.json")["steps"] == overrides[method]["max_steps"]
        assert (work / f"dvclive/{method}/plots/metrics/loss.tsv").exists()


def test_report_figures_table_and_errors(demo):
    work, _, _, _ = demo
    for name in FIGURES:
        png = work / f"plots/{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert (work / f"plots/data/{name}.csv").stat().st_size > 20
    table = (work / "metrics/README.md").read_text()
    assert "Generated by the `report` stage" in table and "meaningless" in table
    for variant in ("base", "full", "lora", "prompt_tuning", "ppo"):
        assert f"| {variant} |" in table
        assert (work / f"data/report/worst/{variant}.csv").exists()
    for reference in ("Lead-3", "Longest-3", "constant", "greedy oracle (ROUGE-1+2, uses the references)"):
        assert f"| {reference} |" in table
    errors = read_json(work / "metrics/errors.json")
    assert set(errors["base"]) == {"empty", "length_issue", "missing_key_info", "hallucinated_entity",
                                   "speaker_confusion"}


def test_lr_sweep_reruns_only_the_full_chain(demo):
    """`dvc exp run -S lr=5e-4` exactly as users type it: only finetune@full, convert@full, evaluate@full and the
    aggregates."""
    work, _, _, _ = demo
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "-S", "lr=5e-4"], cwd=work,
                          capture_output=True, text=True, timeout=900, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = set(_ran(proc.stdout))
    # the aggregates rerun only if full's outputs changed (a random tiny model may predict the same text)
    chain = {"check_params", "finetune@full", "convert@full", "evaluate@full"}
    assert chain <= ran <= chain | {"compare", "report"}, ran
    assert read_json(work / "metrics/train/full.json")["learning_rate"] == 5e-4


def test_exps_shows_the_columns_people_compare(demo):
    """`dvc exp show` had 1,610 columns (69-92 with --only-changed) and no ROUGE in view; `make exps` keeps 20."""
    work, _, _, _ = demo
    header, *rows = _run(["make", "-s", "exps", "ARGS=--csv"], work).splitlines()
    variants = ("base", "full", "lora", "prompt_tuning", "ppo")
    assert header.split(",") == [
        "Experiment", "Created",
        *[f"metrics/eval/{v}.json:{m}.mean" for v in variants for m in ("per_reference.rougeL", "toxicity.mean")],
        "lr", "full.batch_size", "lora.lr", "lora.batch_size", "prompt_tuning.lr", "prompt_tuning.batch_size",
        "ppo.lr", "ppo.batch_size"]
    assert any(",0.0005," in row for row in rows), rows  # the lr=5e-4 experiment of the test above


def _experiments_running_a_stage(work):
    """The experiment workspaces (DVC's temp dirs under .dvc/tmp/exps) in which a stage script is running now.
    (`dvc queue status` says Running from the moment a worker takes the task, stages running or not.)"""
    exps = str(work / ".dvc" / "tmp" / "exps") + os.sep
    running = set()
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cwd, cmdline = proc.info["cwd"] or "", proc.info["cmdline"] or []
        if cwd.startswith(exps) and any(arg.startswith("stages/") for arg in cmdline):
            running.add(cwd)
    return running


def test_two_queued_experiments_run_at_once_with_two_jobs(demo):
    """The parallel sweep (docs/fine-tuning.md) here: two queued CPU experiments, `dvc queue start --jobs 2`. Both
    run at the same time (stage scripts alive in both experiment workspaces at once), both succeed, and both land
    in `dvc exp list` / `dvc exp show`."""
    work, _, _, _ = demo
    dvc = [sys.executable, "-m", "dvc"]
    for lr in ("3e-4", "7e-4"):
        _run([*dvc, "exp", "run", "--queue", "-S", f"lr={lr}", "-n", f"queued-lr-{lr}"], work)
    # The workers outlive `dvc queue start` and inherit its stdout: through a pipe, the call would return only
    # when they exit, after both experiments are done.
    with open(work.parent / "queue-start.log", "w") as log:
        started = subprocess.run([*dvc, "queue", "start", "--jobs", "2"], cwd=work, stdout=log,
                                 stderr=subprocess.STDOUT, timeout=60, env=_dvc_env())
    assert started.returncode == 0, (work.parent / "queue-start.log").read_text()
    deadline = time.monotonic() + 600
    most_at_once, next_status = 0, 0.0
    while True:
        most_at_once = max(most_at_once, len(_experiments_running_a_stage(work)))
        if time.monotonic() >= next_status:
            status = _run([*dvc, "queue", "status"], work)
            lines = status.splitlines()
            rows = [line for line in lines if "queued-lr-" in line]
            if len(rows) == 2 and not any(re.search(r"\b(Queued|Running)\b", line) for line in lines):
                break
            next_status = time.monotonic() + 2
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert all("Success" in line for line in rows), status
    assert most_at_once == 2, "the two experiments never ran a stage at the same time"
    listed = _run([*dvc, "exp", "list"], work)
    assert "queued-lr-3e-4" in listed and "queued-lr-7e-4" in listed, listed
    shown = _run([*dvc, "exp", "show", "--csv", "--keep", "^lr$", "--drop", ".*"], work).split()
    assert {"0.0003", "0.0007"} <= set(shown), shown


def _stages(log: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, log, re.M))


def test_sweep_worker_round_trip(demo, tmp_path):
    """docs/sweeps.md offline: configs/skypilot.yaml's `run` commands, as a cloud worker runs them, against a bare git
    repository as `origin` and a local folder as the DVC remote. The lead pushes its run and an experiment (lr 7e-4)
    with their run cache; a worker (a fresh clone: no outputs, no cache) runs the same override under another name.
    It pulls every stage whose inputs did not change, restores from the run cache every stage some machine already
    ran with the same inputs, and runs only what the run cache cannot hold (training: its curve folder is `persist`);
    the lead's `dvc exp pull` then shows the worker's experiment, with the lead's numbers."""
    work, _, _, _ = demo
    dvc = [sys.executable, "-m", "dvc"]
    origin, remote, worker = tmp_path / "origin.git", tmp_path / "dvc-remote", tmp_path / "worker"
    _run([*dvc, "remote", "add", "-f", "-d", "team", str(remote)], work)
    _run([*GIT, "add", "-A"], work)
    _run([*GIT, "commit", "--allow-empty", "-qm", "the lead's run, with the team remote"], work)
    _run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    _run(["git", "remote", "add", "origin", str(origin)], work)
    _run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], work)
    _run([*dvc, "push", "--run-cache"], work)
    _run([*dvc, "exp", "run", "--temp", "-n", "lead-lr", "-S", "lr=7e-4"], work)
    _run([*dvc, "exp", "push", "--run-cache", "origin", "lead-lr"], work)

    _run(["git", "clone", "-q", "-b", "main", str(origin), str(worker)], tmp_path)
    assert not (worker / "models").exists() and not (worker / ".dvc/cache").exists()
    # The task's setup made .venv; here the tests' own environment stands in for it.
    (worker / ".venv/bin").mkdir(parents=True)
    (worker / ".venv/bin/activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    task = yaml.safe_load((ROOT / "configs/skypilot.yaml").read_text())
    env = _dvc_env() | {k: str(v) for k, v in task["envs"].items()} | {
        "EXP_NAME": "worker-lr", "EXP_ARGS": "-S lr=7e-4", "HF_HUB_OFFLINE": "1",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "no-gitconfig")}  # a fresh machine: no git identity
    proc = subprocess.run(["bash", "-c", task["run"]], cwd=worker, capture_output=True, text=True, timeout=900,
                          env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    ran = _stages(log, r"^Running stage '([^']+)'")
    cached = _stages(log, r"Stage '([^']+)' is cached - skipping run")
    pulled = _stages(log, r"Pulling data for .*?'([^']+)'") | _stages(log, r"Stage '([^']+)' didn't change")
    # Training always runs (its curve folder is `persist`, which DVC never run-caches); so do the stages with a
    # `cache: false` output whose run-cache entry cannot be restored on another machine (docs/sweeps.md).
    ran -= {ALWAYS}  # asks the Hub on every repro (here: nothing from the Hub, the same bytes)
    assert "finetune@full" in ran and ran <= {"finetune@full", "evaluate@full", "compare", "report"}, log[-4000:]
    assert {"check_params", "convert@full"} <= cached, log[-4000:]
    assert {"prepare_data", "base_model", "tokenize", "baseline", "finetune@lora", "detoxify"} <= pulled, log[-4000:]

    _run([*dvc, "exp", "pull", "origin", "worker-lr"], work)
    assert "worker-lr" in _run([*dvc, "exp", "list"], work)
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], work))
    rouge = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                if rev.get("name") in ("lead-lr", "worker-lr"):
                    evaluated = rev["data"]["metrics"]["metrics/eval/full.json"]["data"]
                    rouge[rev["name"]] = evaluated["per_reference"]["rougeL"]["mean"]
    assert rouge.keys() == {"lead-lr", "worker-lr"} and rouge["lead-lr"] == rouge["worker-lr"], rouge


def test_interrupted_dvc_repro_resumes_with_its_whole_curve(demo):
    """Ctrl+C during `dvc repro`, then `dvc repro` again: training resumes from its last checkpoint and the loss
    curve keeps its start (DVC deletes non-persistent outputs before rerunning a stage). Runs last: it leaves the
    demo workspace's lora params changed."""
    import signal

    work, _, _, _ = demo
    doc = yaml.safe_load((work / "params.yaml").read_text())
    doc["lora"]["max_steps"] = 400
    doc["training"].update(save_steps=10, eval_steps=100, logging_steps=5)
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", "finetune@lora"]
    # A terminal's Ctrl+C reaches processes that handle SIGINT. Tests started as a background job (`cmd &` in a
    # script) inherit SIGINT *ignored*, and so would DVC and the stage, which would then train to the end: a handled
    # SIGINT in this process is reset to the default in the child at exec, an ignored one would stay ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        first = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 300
    while not (work / "checkpoints/lora/checkpoint-20").is_dir():  # checkpoint-10 is complete by then
        assert first.poll() is None, "the stage ended before it could be interrupted: " + first.stdout.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode != 0 and not (work / "models/lora").exists(), out[-4000:]
    # Ctrl+C may land while a checkpoint is being written: resume takes the newest complete one
    interrupted_at = max(int(p.name.split("-")[1]) for p in (work / "checkpoints/lora").glob("checkpoint-*")
                         if (p / "trainer_state.json").exists())
    assert interrupted_at < 400

    second = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    metrics = read_json(work / "metrics/train/lora.json")
    assert metrics["resumed_from_step"] == interrupted_at and metrics["steps"] == 400
    steps = [int(line.split("\t")[0]) for line in
             (work / "dvclive/lora/plots/metrics/loss.tsv").read_text().splitlines()[1:]]
    assert steps == [1, *range(5, 401, 5)], "one point per logged step, from the first: " + str(steps[:12])
    assert not (work / "checkpoints/lora").exists()
