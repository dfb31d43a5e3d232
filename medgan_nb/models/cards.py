"""Model cards: the JSON next to each shipped weights file, and how it is shown.

A card is a dict. `FILLED_KEYS` (name, config, weights SHA-256, parameter count) are written by
`medgan_nb.models.zoo.save_model`, never by hand; every other key has a default in `CARD_DEFAULTS`
(summary, default, guard, l1_parent, training, scores, reference, limitations, intended use). The JSON keeps every
number at full precision; only the Markdown rounds them.

- `card_markdown(card)`: the card as Markdown in a fixed layout, as Hugging Face model cards have it: a YAML
  front-matter block (library, licence, tags, data sets, metrics), the name and summary, then the sections
  `SECTIONS` in that order (score lists of rows and noise x blur grids as tables, the config as JSON), then
  any field this version does not know, each in its own section. Numbers are rounded for readers (`_fmt`),
  and development-only data paths are shown as the folder a user has (`display_paths`). This is what
  ``python -m medgan_nb models NAME`` prints and what ``<name>.md`` holds.
- `headline(card)`: the card's ``scores["headline"]`` as one line, or None.
- `display_paths(text)`: `text` with each path of `DEVELOPMENT_PATHS` replaced by its user folder.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..utils.text import markdown_table
from .guard import Guard

FILLED_KEYS = ("name", "config", "weights_sha256", "parameters")      # written by save_model, never by hand
CARD_DEFAULTS: dict[str, Any] = {
    "summary": "", "default": False, "guard": None, "l1_parent": None, "training": {}, "scores": {},
    "reference": None, "limitations": [],
    "intended_use": "Teaching and research on image restoration. Not for diagnosis: outputs may smooth, "
                    "remove or invent detail.",
}
CARD_KEYS = (*FILLED_KEYS, *CARD_DEFAULTS)
LATER_KEYS = ("l1_parent",)     # added after cards were first published: a card without one reads the default

# Data folders that exist only where the shipped models were trained, and the folder holding the same data
# set on a user's machine (relative to the working directory or the repository root).
DEVELOPMENT_PATHS = {"../shared/data/kvasir-seg": "data/Kvasir-SEG"}    # after `data download kvasir-seg`

SECTIONS = ("Model details", "Intended use", "Limitations", "Training data", "Training procedure", "Results",
            "Reference restoration", "Config")
LICENSE = "mit"                                   # the package's licence (pyproject.toml)
TRAINING_DATA_KEYS = ("data", "split")            # training fields shown under "Training data"
GRID_AXES = ("noise_stds", "blur_sigmas")         # a scores dict holding both: its 2-D lists are grids
RATIO_WORDS = frozenset({"ratio", "naturalness", "ci95", "inside", "loss"})   # sharpness, naturalness, lesion diffs
PSNR_WORDS = frozenset({"psnr", "db", "model", "identity", "gan", "baseline", "input", "median", "gaussian",
                        "nlm", "tv", "bilateral", "bm3d", "cbm3d"})   # key words of values in dB


# ---------------------------------------------------------------- rendering
def headline(card: dict[str, Any]) -> str | None:
    """The card's ``scores["headline"]`` as one line (text, or "label: value; ..."), or None."""
    value = (card.get("scores") or {}).get("headline")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value) if value is not None else None


def display_paths(text: str) -> str:
    """`text` with every development-only data path (`DEVELOPMENT_PATHS`) replaced by the user's folder."""
    for development, user in DEVELOPMENT_PATHS.items():
        text = text.replace(development, user)
    return text


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown: YAML front matter, ``# name``, the summary, then `SECTIONS` in order, then
    one section per field not in `CARD_KEYS`. Missing hand-written fields read as their `CARD_DEFAULTS`.

    Numbers are rounded by key name (`_fmt`); the config is shown as JSON with its numbers unchanged. Paths
    in `DEVELOPMENT_PATHS` are shown as the user's folder. The result ends with one newline.
    """
    card = {**CARD_DEFAULTS, **card}
    cfg, name = card["config"], card["name"]
    training = dict(card["training"] or {})
    data = {k: training.pop(k) for k in TRAINING_DATA_KEYS if k in training}
    if not data:
        data = {"data_dir": cfg.get("data_dir") or "the shipped Kvasir-SEG sample (data/kvasir-sample)"}
    ref = card["reference"]
    lines = [*_front_matter(card), "", f"# {name}", "", card["summary"], "",
             "## Model details", "",
             f"- generator: {_generator_text(cfg)}",
             f"- parameters: {card['parameters']:,}",
             f"- weights: `{name}.safetensors`, SHA-256 `{card['weights_sha256']}`",
             f"- default model: {'yes' if card['default'] else 'no'}",
             f"- guard: {_guard_text(card['guard'])}",
             *([f"- GAN fine-tune of `{card['l1_parent']}` (same architecture): `--gan-weight A` (Python: "
                f"`gan_weight=A`) interpolates the two networks' weights, 0 = `{card['l1_parent']}`, 1 = this model"]
               if card["l1_parent"] else []),
             f"- use: `medgan_nb.load_model(\"{name}\")`, or "
             f"`python -m medgan_nb enhance FRAMES --out OUT --model {name}`",
             "", "## Intended use", "", str(card["intended_use"]),
             "", "## Limitations", "", *(f"- {x}" for x in card["limitations"] or ["(none recorded)"]),
             "", "## Training data", "", *_items(data),
             "", "## Training procedure", "", *_items(training),
             "", "## Results", "", *_results(card["scores"] or {}),
             "## Reference restoration", "", *(_items(ref) if ref else ["(none recorded)"]),
             "", "## Config", "", "```json", json.dumps(cfg, indent=2), "```"]
    for key in (k for k in card if k not in CARD_KEYS):                       # fields of newer cards
        lines += ["", f"## {key}", "", *_items(card[key], key)]
    return display_paths("\n".join(lines)) + "\n"


def _front_matter(card: dict[str, Any]) -> list[str]:
    """The YAML metadata block: library, licence, pipeline, tags, data sets and metrics."""
    cfg = card["config"]
    modality = cfg.get("modality", "endoscopy")
    degradations = set(cfg.get("degradations") or ())
    tags = ["image-restoration", "medical-imaging", modality, "pix2pix",
            *(["denoising"] if degradations & {"noise", "salt_pepper"} else []),
            *(["deblurring"] if degradations & {"blur", "motion_blur"} else [])]
    data_dir = str(cfg.get("data_dir") or "")
    datasets = ["kvasir-seg"] if modality == "endoscopy" and (not data_dir or "kvasir" in data_dir.lower()) else []
    return ["---", "library_name: medgan_nb", f"license: {LICENSE}", "pipeline_tag: image-to-image",
            "tags:", *(f"- {t}" for t in tags),
            *(["datasets:", *(f"- {d}" for d in datasets)] if datasets else []),
            "metrics:", "- psnr", "- ssim", "---"]


def _generator_text(cfg: dict[str, Any]) -> str:
    """The architecture in a few words: registry name, residual output, width and depth."""
    parts = [f"`{cfg.get('generator', '?')}`"]
    if cfg.get("residual"):
        parts.append("residual output")
    if "base_channels" in cfg:
        parts.append(f"base width {cfg['base_channels']}")
    if "depth" in cfg:
        parts.append(f"depth {cfg['depth']}")
    return ", ".join(parts)


def _guard_text(guard: dict | None) -> str:
    if not guard:
        return "none (every input gets the model's output)"
    g = Guard.from_card(guard)
    size = "RMS" if g.change_stat == "rms" else "median |correction|"
    return (f"inputs with an estimated noise std below {g.below:g} (all of the model from {g.full:g}) "
            f"whose correction would be below {g.change_below:g} {size} (all of it from {g.change_full:g}) "
            f"are returned unchanged (medgan_nb.models.guard)")


def _results(scores: dict[str, Any]) -> list[str]:
    """The scores: the headline first, then one subsection per entry (tables for rows and grids; "figures", a
    dict caption -> image path relative to the card, as images)."""
    if not scores:
        return ["(none recorded)", ""]
    lines = []
    if "headline" in scores:
        lines += [*_items(scores["headline"], "headline"), ""]
    for key, value in scores.items():
        if key == "headline":
            continue
        if key == "figures" and isinstance(value, dict):          # caption -> path, relative to the card file
            body = [f"![{caption}]({path})" for caption, path in value.items()]
        elif _is_rows(value):
            body = _table(value)
        elif isinstance(value, dict) and all(a in value for a in GRID_AXES):
            body = _grid_items(value, key)
        else:
            body = _items(value, key)
        lines += [f"### {key}", "", *body, ""]
    return lines


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of `rows`; the columns are every key, in the order first seen; cells by `_fmt`."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return markdown_table(columns, [[_fmt(c, r[c]) if c in r else "" for c in columns] for r in rows]).split("\n")


def _grid_items(value: dict[str, Any], parent: str) -> list[str]:
    """A noise x blur grid: its 2-D lists as tables (rows: noise std, columns: blur sigma), the rest as items."""
    noise, blur = value[GRID_AXES[0]], value[GRID_AXES[1]]
    grids = [k for k, v in value.items() if isinstance(v, list) and len(v) == len(noise)
             and all(isinstance(row, list) and len(row) == len(blur) for row in v)]
    lines = _items({k: v for k, v in value.items() if k not in grids and k not in GRID_AXES}, parent)
    for key in grids:
        table = markdown_table(["noise std / blur sigma", *(_fmt("blur_sigma", b) for b in blur)],
                               [[_fmt("noise_std", n), *(_fmt(key, x) for x in row)] for n, row in zip(noise, value[key])])
        lines += ["", f"{key} (rows: noise std; columns: blur sigma):", "", *table.split("\n")]
    return lines


def _items(value: Any, parent: str = "") -> list[str]:
    """A dict as "- key: value" lines, a list as bullets, anything else as one line; values by `_fmt`."""
    if isinstance(value, dict):
        return [f"- {k}: {_fmt(_join(parent, k), v)}" for k, v in value.items()] or ["(none recorded)"]
    if isinstance(value, list):
        return [f"- {_fmt(parent, v)}" for v in value] or ["(none recorded)"]
    return [_fmt(parent, value)]


def _join(parent: str, key: Any) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _fmt(key: str, value: Any) -> str:
    """`value` as a reader sees it, rounded by what its `key` names (a dotted path: the last part decides,
    else the whole path):

    - "ssim" and the sharpness and naturalness measures (`RATIO_WORDS`): 2 decimals; "ms": whole numbers, under
      10 two significant digits;
    - PSNR-like (`PSNR_WORDS`: psnr, db, model, identity, baseline names): 1 decimal;
    - any other float: 3 significant digits; ints with thousands separators; bools as yes/no;
    - lists and dicts item by item (a dict's values under ``key.child``); text unchanged.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _round(key.rsplit(".", 1)[-1], value) or _round(key, value) or f"{value:.3g}"
    if isinstance(value, list):
        text = ", ".join(_fmt(key, v) for v in value)
        return text if all(isinstance(v, str) for v in value) else f"[{text}]"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(_join(key, k), v)}" for k, v in value.items())
    return "none" if value is None else str(value)


def _round(key: str, value: float) -> str | None:
    """`value` rounded by the words of `key` (see `_fmt`), or None when no word decides."""
    words = set(re.findall(r"[a-z0-9]+", key.lower()))
    if words & RATIO_WORDS:
        return f"{value:.2f}"
    if "ssim" in words:
        return f"{value:.2f}"
    if "ms" in words:
        return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"
    if words & PSNR_WORDS:
        return f"{value:.1f}"
    return None
