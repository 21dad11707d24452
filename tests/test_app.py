"""The Gradio app tested as a person uses it: headless Chromium pastes a dialogue and clicks; then 20 concurrent
API requests. Needs Debian's chromium (/usr/bin/chromium) and the playwright package; CI installs both and sets
REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import tiny_params, write_params

pytestmark = pytest.mark.slow  # a browser and a running app

CHROMIUM = Path("/usr/bin/chromium")
DIALOGUE = ("#Person1#: Good morning, I'd like to order a cake for Saturday.\n"
            "#Person2#: Of course. Chocolate or vanilla?\n#Person1#: Chocolate, please.")

if not CHROMIUM.exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)


APP_LOG: list[Path] = []  # the running app's log file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(models: Path, params: Path, log: Path):
    """The app as a user starts it, on a free port, until the block ends; yields its URL."""
    port = _free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "summarizer.app", "--params", str(params), "--models",
                                 str(models), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=os.environ | {"GRADIO_ANALYTICS_ENABLED": "False"})
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the app exited: {log.read_text()[-2000:]}") from None
                    time.sleep(0.5)
            else:
                raise RuntimeError("the app did not start within 60 s")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(tiny_workspace, tmp_path_factory):
    raw = tiny_params()
    raw["generation"]["max_new_tokens"] = 16
    params = write_params(tmp_path_factory.mktemp("app") / "params.yaml", raw)
    log = tmp_path_factory.mktemp("applog") / "app.log"
    APP_LOG.append(log)
    with running_app(tiny_workspace / "models", params, log) as url:
        yield url


def test_binds_to_localhost_only(app_url):
    assert app_url.startswith("http://127.0.0.1:")


def test_browser_paste_click_summary(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(app_url, wait_until="networkidle")
        # It says the tiny models are meaningless. A waiting assertion: right after networkidle Gradio may not have
        # rendered it yet (an immediate is_visible() failed once in three runs).
        expect(page.locator("#tiny-warning")).to_be_visible(timeout=30_000)
        page.locator("#dialogue textarea").fill(DIALOGUE)
        page.locator("#summarize").click()
        page.wait_for_function("document.querySelector('#latency textarea').value.endsWith(' s')", timeout=90_000)
        toxicity = float(page.locator("#toxicity textarea").input_value())
        assert 0 <= toxicity <= 1
        expect(page.locator("#summary")).to_contain_text("AI-generated")
        # bad input: a message on the page, not a stack trace
        page.locator("#dialogue textarea").fill("   ")
        page.locator("#summarize").click()
        page.wait_for_function("document.querySelector('#note').innerText.includes('empty')", timeout=60_000)
        assert "Traceback" not in page.content()
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()


HOSTILE = ("#Person1#: Hi <script>alert(1)</script> there, did you get my <img src=x onerror=alert(2)> note?\n"
           "#Person2#: Yes, <b>bold</b> move. <script>alert(1)</script>")


def test_pasted_html_is_shown_as_text(app_url):
    """Gradio's sanitizer kept `<img>` (dropping only its handler) and removed `<script>` text from the history:
    whatever a person pastes is shown as the characters they pasted, never interpreted."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app_url, wait_until="networkidle")
        page.locator("#dialogue textarea").fill(HOSTILE)
        page.locator("#summarize").click()
        page.wait_for_function("document.querySelector('#latency textarea').value.endsWith(' s')", timeout=90_000)
        history = page.locator("#history")
        expect(history).to_contain_text("Hi <script>alert(1)</script> there, did you get my <img src=x "
                                        "onerror=alert(2)> note?", timeout=30_000)
        assert history.locator("img").count() == 0 and history.locator("script").count() == 0
        assert dialogs == []
        browser.close()


def test_literal_markdown_escapes_every_markup_character():
    from summarizer.app import literal_markdown

    assert literal_markdown("<img src=x> **b** &lt; $5 [a](b)") == (
        r"\<img src\=x\> \*\*b\*\* \&lt\; \$5 \[a\]\(b\)")
    assert literal_markdown("plain words") == "plain words"


def test_twenty_concurrent_api_requests(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)

    def call(i):
        return client.predict(DIALOGUE.replace("Saturday", f"day {i}"), "base", 16, False, 1.0, 1, [],
                              api_name="/summarize")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20)))
    assert len(results) == 20
    for _summary, toxicity, latency, note, history in results:
        assert not note.startswith("⚠️"), note
        assert latency.endswith(" s") and 0 <= float(toxicity) <= 1
        assert history[-1]["role"] == "assistant"


def test_long_meeting_is_summarized_in_chunks_with_progress(app_url):
    """A 3,000-word meeting was refused by the 20,000-character default cap; now it is summarized in chunks, and
    the page follows the chunks' progress (what the API client sees is what the page's progress bar shows)."""
    from gradio_client import Client

    from test_cli import meeting

    client = Client(app_url, verbose=False)
    job = client.submit(meeting(3000), "base", 16, False, 1.0, 1, [], api_name="/summarize")
    seen = set()
    while not job.done():
        for unit in (job.status().progress_data or []):
            seen.add((unit.desc, unit.index, unit.length))
        time.sleep(0.02)
    summary, toxicity, latency, note, history = job.result()
    chunks = int(note.split("summarized in ")[1].split(" chunks")[0])
    assert chunks > 1, note
    assert any(desc == f"summarizing {chunks} chunks" and length == chunks for desc, _, length in seen), seen


def test_out_of_range_api_value_is_refused_with_one_log_line(app_url):
    """Each refused out-of-range value used to print a full traceback to the server log."""
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    start = APP_LOG[0].stat().st_size
    for _ in range(3):
        with pytest.raises(Exception, match="greater than maximum value 256"):
            client.predict(DIALOGUE, "base", 100000, False, 1.0, 1, [], api_name="/summarize")
    time.sleep(0.5)
    with open(APP_LOG[0]) as fh:
        fh.seek(start)
        logged = fh.read()
    assert "Traceback" not in logged, logged
    refusals = [line for line in logged.splitlines() if "refused a request" in line]
    assert len(refusals) == 3 and "Max new tokens: Value 100000 is greater than maximum value 256." in refusals[0]


def test_a_variant_trained_while_the_app_runs_is_served_without_a_restart(tiny_workspace, tmp_path):
    """The page listed the variants found at start-up, and the API refused any other ("Value: ppo is not in the
    list of choices"). Now a variant that appears on disk is offered when the page loads and served on first use."""
    import shutil

    from gradio_client import Client

    models = tmp_path / "models"
    for name in ("base", "classifier", "ctranslate2"):
        shutil.copytree(tiny_workspace / "models" / name, models / name)
    raw = tiny_params()
    raw["generation"]["max_new_tokens"] = 8
    params = write_params(tmp_path / "params.yaml", raw)
    with running_app(models, params, tmp_path / "app.log") as url:
        client = Client(url, verbose=False)
        assert "base" in client.predict(api_name="/models")[1] and "ppo" not in client.predict(api_name="/models")[1]
        shutil.copytree(models / "base", models / "ppo")  # "trained" while the app runs
        assert "ppo" in client.predict(api_name="/models")[1]  # offered at the next page load
        summary, toxicity, latency, note, history = client.predict(DIALOGUE, "ppo", 8, False, 1.0, 1, [],
                                                                   api_name="/summarize")
        assert not note.startswith("⚠️"), note
        # the history names the variant and the backend that made it (converted now: the pipeline did not)
        assert latency.endswith(" s") and "[ppo, ctranslate2]" in str(history[-1]["content"]).replace("\\", "")
        _, _, _, note, _ = client.predict(DIALOGUE, "nope", 8, False, 1.0, 1, [], api_name="/summarize")
        assert note.startswith("⚠️") and "Unknown model" in note  # still only the fixed list
