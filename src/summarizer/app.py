"""The chatbot: paste a dialogue, pick a trained variant, get an AI-generated summary with its toxicity and latency.

    python -m summarizer.app [--params params.yaml] [--models models] [--host 127.0.0.1] [--port 7860]

Binds to 127.0.0.1 unless told otherwise. Requests queue behind ``app.concurrency_limit`` generations at a time.
The same function is exposed as the API endpoint ``/summarize`` (see the page's "Use via API" link).
"""

from __future__ import annotations

import argparse
import logging
import re

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


def build_app(service: Summarizer, cfg: Params):
    available, found = models_on_disk(service)
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
                    variant = gr.Dropdown(choices=available or list(VARIANTS), value=(available or ["base"])[0],
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
                    toxicity = gr.Textbox(label="Toxicity P(hate)", elem_id="toxicity")
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
            return gr.Dropdown(choices=choices or list(VARIANTS), value=(choices or ["base"])[0]), line

        demo.load(on_load, outputs=[variant, models_note], api_name="models")
        button.click(on_click,
                     inputs=[dialogue, variant, max_new, sample, temperature, beams, history],
                     outputs=[summary, toxicity, latency, note, history], api_name="summarize",
                     concurrency_limit=cfg.app.concurrency_limit)
    return demo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--models", default="models", help="folder with base/, lora/, ... from the pipeline")
    p.add_argument("--host", default=None, help="default: app.host (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: app.port")
    args = p.parse_args(argv)
    setup_logging()
    cfg = load_params(args.params)
    runtime = select_runtime(cfg.device, cfg.precision, deterministic=cfg.deterministic)
    service = Summarizer(cfg, args.models, device=runtime.device, dtype=runtime.torch_dtype)
    log.info("variants available: %s", ", ".join(service.available()) or "none")
    demo = build_app(service, cfg)
    demo.queue(default_concurrency_limit=cfg.app.concurrency_limit, max_size=64)
    demo.launch(server_name=args.host or cfg.app.host, server_port=args.port or cfg.app.port, css=CSS,
                show_error=False, share=False)


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        raise SystemExit(str(err)) from None
