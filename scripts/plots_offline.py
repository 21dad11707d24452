"""DVC's interactive plots, offline: `dvc plots show` / `dvc plots diff` with Vega inlined in the page.

DVC's HTML pages load Vega, Vega-Lite and Vega-Embed from a CDN (dvc_render/vega.py), so they are blank without a
network. This writes a page template that carries the three libraries itself (vl-convert's JavaScript bundle, about
0.9 MB, no network), then asks DVC to fill it with the plots. Charts render as SVG.

    python scripts/plots_offline.py                  # dvc_plots/index.html: the workspace's plots (`make plots`)
    python scripts/plots_offline.py --diff main      # the workspace against main (`make plots-diff REV=main`)
    python scripts/plots_offline.py --template-only  # dvc_plots/offline-template.html, for your own dvc commands:
    dvc plots diff HEAD~1 --html-template dvc_plots/offline-template.html -o dvc_plots

The output is generated, never committed (dvc_plots/ is git-ignored).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# DVC's plot templates are Vega-Lite 5 specs ("$schema": .../vega-lite/v5.json): bundle the same major version.
VEGA_LITE = "5.21"
# vl-convert bundles an ES snippet with the libraries into one classic script. DVC's page calls vegaEmbed('#id',
# spec) from inline scripts after it, so the snippet makes the libraries global, drawing SVG rather than a canvas
# (SVG can be inspected, and is what a test can find).
SNIPPET = """
window.vega = vega;
window.vegaLite = vegaLite;
window.vegaEmbed = (el, spec, opt) => vegaEmbed(el, spec, Object.assign({renderer: "svg"}, opt || {}));
"""
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC plots (offline)</title>
    <script type="text/javascript">
BUNDLE
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def write_template(path: Path) -> Path:
    """A DVC HTML template (`--html-template`) with the plotting libraries inline and no `{scripts}` placeholder,
    which is where DVC would put its CDN links."""
    import vl_convert

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(PAGE.replace("BUNDLE", vl_convert.javascript_bundle(SNIPPET, vl_version=VEGA_LITE)),
                   encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="dvc_plots", help="folder for the page (default: dvc_plots, git-ignored)")
    p.add_argument("--diff", nargs="*", metavar="REV", help="`dvc plots diff` against these revisions instead")
    p.add_argument("--template-only", action="store_true", help="only write the template into --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    template = write_template(out / "offline-template.html")
    if args.template_only:
        print(f"template: {template}")
        return 0
    command = ["dvc", "plots", *(["diff", *args.diff] if args.diff is not None else ["show"]),
               "--html-template", str(template), "-o", str(out)]
    done = subprocess.run(command)
    if done.returncode:
        print(f"`{' '.join(command)}` failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    print(f"open {out / 'index.html'} (no network needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
