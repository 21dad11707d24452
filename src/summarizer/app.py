"""The chatbot: paste a dialogue, pick a trained variant, get an AI-generated summary with its toxicity and latency.

    python -m summarizer.app [--params params.yaml] [--models models] [--host 127.0.0.1] [--port 7860]
    python -m summarizer.app --workspace .laptop      # a workspace's models with its own params (make laptop/demo)

Binds to 127.0.0.1 unless told otherwise. Requests queue behind ``app.concurrency_limit`` generations at a time.
The same function is exposed as the API endpoint ``/summarize`` (see the page's "Use via API" link).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import gradio as gr

from summarizer.config import VARIANTS, Params, load_params
from summarizer.device import select_runtime
from summarizer.logs import setup_logging
from summarizer.service import EXAMPLE_DIALOGUE, InputError, Options, Summarizer, user_message

log = logging.getLogger(__name__)

CSS = ".ai-label textarea {border-left: 4px solid #f0a500 !important}"
# Every ASCII punctuation character, each of which Markdown (CommonMark, marked.js) lets a backslash make literal.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def literal_markdown(text: str) -> str:
    """``text`` as Markdown that displays exactly those characters: no HTML tag, entity, emphasis or link can form.

    The history panel and the note render Markdown, and Gradio's sanitizer keeps tags such as ``<img>`` (it drops
    only their handlers), so a pasted ``<img src="https://...">`` would make the viewer's browser fetch it.
    """
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def summarize_request(service: Summarizer, cfg: Params, dialogue: str, variant: str, max_new_tokens: float,
                      sample: bool, temperature: float, beams: float, history: list | None):
    """One request: (summary, toxicity, latency, note, history). Refusals come back as a note, never a traceback."""
    history = list(history or [])
    try:
        options = Options(max_new_tokens=int(max_new_tokens), do_sample=bool(sample), temperature=float(temperature),
                          num_beams=int(beams))
        # progress: a long dialogue's chunks get a tqdm bar, which the page follows (gr.Progress(track_tqdm=True)).
        result = service.summarize(dialogue, variant, options, max_chars=cfg.app.max_input_chars, progress=True)
    except Exception as err:  # noqa: BLE001 — every failure becomes a message for the page
        return "", "", "", f"⚠️ {literal_markdown(user_message(err))}", history
    note = (f"The dialogue was too long for one pass: it was summarized in {result.chunks} chunks of whole turns, "
            "then the chunk summaries were summarized." if result.chunked else "")
    if not result.summary:
        note = f"The model returned an empty summary. {note}".strip()
    if result.cut_turns:
        note += f" {result.cut_turns} single turn(s) exceeded the model's input and were cut."
    first_line = dialogue.strip().splitlines()[0]
    excerpt = first_line[:120] + (" …" if len(dialogue.strip()) > 120 else "")
    # Pasted text and generated text are shown as the characters they are, never interpreted.
    history.append({"role": "user", "content": literal_markdown(excerpt)})
    # Which engine generated it (generation.backend; prompt tuning is always transformers).
    history.append({"role": "assistant", "content": literal_markdown(f"[{variant}, {result.backend}] "
                                                                     f"{result.summary}")})
    return result.summary, f"{result.toxicity:.4f}", f"{result.latency_s:.2f} s", literal_markdown(note), history


def refuse_quietly(slider: gr.Slider) -> gr.Slider:
    """Refuse an out-of-range value sent to the API with one log line instead of a traceback per request (the
    caller still gets the message). The instance's ``preprocess`` is wrapped: a subclass of a Gradio component
    would make Gradio write a ``.pyi`` stub next to this file (component_meta.py, ``create_or_modify_pyi``)."""
    check = slider.preprocess

    def preprocess(payload):
        try:
            return check(payload)
        except gr.Error as err:
            log.warning("refused a request: %s: %s", slider.label, err.message)
            raise gr.Error(err.message, print_exception=False) from None

    slider.preprocess = preprocess
    return slider


def models_on_disk(service: Summarizer) -> tuple[list[str], str]:
    """The variants under the models folder now, and the line the page shows about them. Read when the page loads:
    a variant trained while the app runs (`dvc repro` in another terminal) is offered on the next page load and
    loaded on its first request, without a restart."""
    available = service.available()
    if not available:
        return [], ("⚠️ No trained model found under the models folder: run `dvc repro` (or `make demo`), then "
                    "reload this page.")
    return available, (f"Models found when this page loaded: {', '.join(available)}. A model trained since "
                       "appears when you reload the page.")


# Workspaces that scripts/demo.py makes, each with its own params.yaml, models/ and metrics/: looked for when the
# project's own models/ has none (after `make laptop` or `make demo`).
WORKSPACES = (".laptop", ".demo")


def resolve_paths(params: str | None, models: str | None, workspace: str | None,
                  root: Path = Path(".")) -> tuple[Path, Path, Path]:
    """(params file, models folder, metrics folder) to serve.

    A workspace brings its own params: its models were trained with them, and the root params.yaml may name another
    classifier with other labels (serving `.laptop/models` with the root's params failed every request: the root's
    RoBERTa labels hate/nothate are not alt-profanity-check's) or other generation settings. ``--models`` inside a
    workspace takes that workspace's params unless ``--params`` says otherwise; with neither, the project's models/
    if it has a base model, else the first workspace that has one.
    """
    if workspace is None and models is not None and (Path(models).parent / "params.yaml").is_file() \
            and Path(models).resolve().parent != root.resolve():
        workspace = str(Path(models).parent)
    if workspace is None and models is None and not (root / "models/base").is_dir():
        found = [w for w in WORKSPACES if (root / w / "models/base").is_dir()]
        if found:
            workspace = str(root / found[0])
            log.info("no models under %s: serving the workspace %s (its params and models)", root / "models",
                     workspace)
    if workspace is not None:
        ws = Path(workspace)
        if not (ws / "params.yaml").is_file():
            raise InputError(f"{ws} is not a workspace: it has no params.yaml (make laptop or make demo makes one)")
        return Path(params) if params else ws / "params.yaml", Path(models) if models else ws / "models", \
            ws / "metrics"
    return Path(params or root / "params.yaml"), Path(models or root / "models"), root / "metrics"


def preferred_variant(available: list[str], metrics_dir: Path | None) -> str:
    """The trained variant with the best test ROUGE-L (per_reference) in ``metrics_dir``, else ``full``, else the
    first: not ``base``, which writes dialogue text rather than a summary in the learning profile."""
    if not available:
        return "base"
    trained = [v for v in available if v != "base"]
    scores = {}
    for v in trained:
        path = None if metrics_dir is None else metrics_dir / "eval" / f"{v}.json"
        if path is not None and path.is_file():
            scores[v] = json.loads(path.read_text())["per_reference"]["rougeL"]["mean"]
    if scores:
        return max(scores, key=scores.get)
    return "full" if "full" in available else (trained or available)[0]


def build_app(service: Summarizer, cfg: Params, metrics_dir: Path | None = None):
    available, found = models_on_disk(service)
    toxic = cfg.classifier.toxic_label
    with gr.Blocks(title="Dialogue summarizer") as demo:
        gr.Markdown("# Dialogue summarizer\nPaste a dialogue (one `Speaker: text` turn per line), pick a model, "
                    "and get a summary. Summaries are **AI-generated** and can be wrong.")
        with gr.Row():
            with gr.Column(scale=3):
                dialogue = gr.Textbox(value=EXAMPLE_DIALOGUE, lines=12, max_lines=30, label="Dialogue",
                                      elem_id="dialogue")
                with gr.Row():
                    # allow_custom_value: the API may name a variant trained after the page was built; the
                    # service checks it against the fixed list and the folder (InputError otherwise).
                    variant = gr.Dropdown(choices=available or list(VARIANTS),
                                          value=preferred_variant(available, metrics_dir),
                                          label="Model", elem_id="variant", allow_custom_value=True)
                    button = gr.Button("Summarize", variant="primary", elem_id="summarize")
                with gr.Accordion("Generation settings", open=False):
                    max_new = refuse_quietly(gr.Slider(8, 256, value=cfg.generation.max_new_tokens, step=8,
                                                       label="Max new tokens"))
                    sample = gr.Checkbox(value=False, label="Sample (instead of greedy decoding)")
                    temperature = refuse_quietly(gr.Slider(0.1, 2.0, value=1.0, step=0.1,
                                                           label="Temperature (when sampling)"))
                    beams = refuse_quietly(gr.Slider(1, 8, value=1, step=1, label="Beams"))
            with gr.Column(scale=2):
                summary = gr.Textbox(label="Summary (AI-generated)", lines=5, elem_id="summary",
                                     elem_classes=["ai-label"])
                with gr.Row():
                    # the classifier in use says what it measures (hate for the Hub's RoBERTa, offensive offline)
                    toxicity = gr.Textbox(label=f"Toxicity P({toxic})", elem_id="toxicity")
                    latency = gr.Textbox(label="Latency", elem_id="latency")
                note = gr.Markdown(elem_id="note")
                # No LaTeX: `$...$` in a transcript is money, not math.
                history = gr.Chatbot(label="This session", height=260, elem_id="history", latex_delimiters=[])
        models_note = gr.Markdown(found, elem_id="models-found")
        if service.is_tiny_random():
            gr.Markdown("⚠️ **These are tiny random models** (an offline demo): their summaries are meaningless.",
                        elem_id="tiny-warning")
        def on_click(dialogue, variant, max_new, sample, temperature, beams, history,
                     progress=gr.Progress(track_tqdm=True)):  # noqa: B008 — Gradio reads the default to track tqdm
            return summarize_request(service, cfg, dialogue, variant, max_new, sample, temperature, beams, history)

        def on_load():
            choices, line = models_on_disk(service)
            return gr.Dropdown(choices=choices or list(VARIANTS), value=preferred_variant(choices, metrics_dir)), line

        demo.load(on_load, outputs=[variant, models_note], api_name="models")
        button.click(on_click,
                     inputs=[dialogue, variant, max_new, sample, temperature, beams, history],
                     outputs=[summary, toxicity, latency, note, history], api_name="summarize",
                     concurrency_limit=cfg.app.concurrency_limit)
    return demo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", help="default: the workspace's, else params.yaml")
    p.add_argument("--models", help="folder with base/, lora/, ... from the pipeline (default: the workspace's, "
                                    "else models/, else .laptop/ or .demo/'s)")
    p.add_argument("--workspace", help="a workspace of scripts/demo.py (.laptop, .demo): its params and models")
    p.add_argument("--host", default=None, help="default: app.host (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: app.port")
    args = p.parse_args(argv)
    setup_logging()
    params, models, metrics = resolve_paths(args.params, args.models, args.workspace)
    log.info("serving %s with %s", models, params)
    cfg = load_params(params)
    runtime = select_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    service = Summarizer(cfg, models, device=runtime.device, dtype=runtime.torch_dtype)
    log.info("variants available: %s", ", ".join(service.available()) or "none")
    demo = build_app(service, cfg, metrics)
    demo.queue(default_concurrency_limit=cfg.app.concurrency_limit, max_size=64)
    demo.launch(server_name=args.host or cfg.app.host, server_port=args.port or cfg.app.port, css=CSS,
                show_error=False, share=False)


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        raise SystemExit(str(err)) from None
