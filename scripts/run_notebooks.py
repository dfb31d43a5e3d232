"""Execute every notebook top to bottom in its default preset and save it as HTML, with its wall time.

    python scripts/run_notebooks.py [--out output/notebooks] [--tiny] [NOTEBOOK ...]      # or: make notebooks

Each run goes to a new folder ``<out>/<date-time>/`` (earlier runs are never replaced): one HTML page per
notebook (with its pictures, so a reader can look before running anything) and ``times.md`` / ``times.json``
with each notebook's wall time and the machine. A notebook that fails is saved as far as it ran, the error
is reported, and the others still run; the exit status is 1 if any failed. ``--tiny`` runs them in the
tests' tiny mode (MEDGAN_TINY=1: seconds each).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from medgan_nb.utils import device_line

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1800          # per cell

# A widget's picture reaches an executed notebook through nbclient, which plays the browser's part for the widget's
# output area and sends each picture back to the kernel. If that happens just as the cell finishes, nbclient can miss
# the kernel's reply and wait forever (nbclient issue #312; the bigger the picture, the likelier). The runner, not the
# lessons, avoids the race: run in each kernel at start-up (outside the notebook's history), this hook keeps a cell
# that displayed widgets running for SETTLE_S more seconds before the kernel reports it done.
SETTLE_S = 2.0
SETTLE_HOOK = f"""
def _install_widget_settling(settle_s={SETTLE_S}):
    import time
    from IPython import get_ipython
    try:
        from ipywidgets import Widget
    except ImportError:
        return
    def widget_count():
        return len(getattr(Widget, "_active_widgets", None) or getattr(Widget, "widgets", None) or {{}})
    before = [0]
    def count_widgets_before(info):
        before[0] = widget_count()
    def settle_after_widgets(result):
        if widget_count() > before[0]:
            time.sleep(settle_s)
    get_ipython().events.register("pre_run_cell", count_widgets_before)
    get_ipython().events.register("post_run_cell", settle_after_widgets)
_install_widget_settling()
del _install_widget_settling
"""


def run(notebook: Path, out_dir: Path) -> dict:
    """Execute one notebook (working directory: its folder), write its HTML; its time and any error."""
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                       extra_arguments=[f"--IPKernelApp.exec_lines={SETTLE_HOOK}"],
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1] if str(e).strip() else "cell failed"
    minutes = (time.perf_counter() - start) / 60
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / f"{notebook.stem}.html").write_text(html, encoding="utf-8")
    return {"notebook": notebook.name, "minutes": round(minutes, 2), "error": error}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="default: the labs notebooks/[0-9]*.ipynb, the appendices A*.ipynb, then solutions/*.ipynb")
    p.add_argument("--out", type=Path, default=REPO / "output" / "notebooks")
    p.add_argument("--tiny", action="store_true", help="MEDGAN_TINY=1 (the tests' mode)")
    args = p.parse_args()
    if args.tiny:
        os.environ["MEDGAN_TINY"] = "1"
    folder = REPO / "notebooks"                 # labs, then appendices, then the solutions
    notebooks = args.notebooks or [*sorted(folder.glob("[0-9]*.ipynb")), *sorted(folder.glob("A[0-9]*.ipynb")),
                                   *sorted((folder / "solutions").glob("*.ipynb"))]
    out_dir = args.out / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=False)
    rows = []
    for notebook in notebooks:
        print(f"running {notebook.name} ...", flush=True)
        rows.append(run(notebook.resolve(), out_dir))
        r = rows[-1]
        print(f"  {r['minutes']:.1f} min" + (f", FAILED: {r['error']}" if r["error"] else ""), flush=True)
    mode = "tiny (MEDGAN_TINY=1)" if args.tiny else "the notebook preset"
    meta = {"date": date.today().isoformat(), "machine": device_line(), "mode": mode}
    (out_dir / "times.json").write_text(json.dumps({**meta, "notebooks": rows}, indent=2) + "\n")
    table = ["| notebook | minutes | result |", "|---|---|---|"] + [
        f"| {r['notebook']} | {r['minutes']:.1f} | {'failed: ' + r['error'] if r['error'] else 'ran'} |" for r in rows]
    (out_dir / "times.md").write_text(f"{meta['date']}, {meta['machine']}, {mode}\n\n" + "\n".join(table) + "\n")
    print("\n".join(table) + f"\nHTML and times in {out_dir}")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
