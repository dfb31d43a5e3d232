"""Model cards: the JSON next to each shipped weights file, and how it is shown.

A card is a dict. `FILLED_KEYS` (name, config, weights SHA-256, parameter count) are written by
`medgan_nb.models.zoo.save_model`, never by hand; every other key has a default in `CARD_DEFAULTS`
(summary, default, guard, training, scores, reference, limitations, intended use).

- `card_markdown(card)`: the card as Markdown: every field, lists of score rows as tables, the config as
  JSON. This is what ``python -m medgan_nb models NAME`` prints.
- `headline(card)`: the card's ``scores["headline"]`` as one line, or None.
"""

from __future__ import annotations

import json
from typing import Any

from .guard import Guard

FILLED_KEYS = ("name", "config", "weights_sha256", "parameters")      # written by save_model, never by hand
CARD_DEFAULTS: dict[str, Any] = {
    "summary": "", "default": False, "guard": None, "training": {}, "scores": {}, "reference": None,
    "limitations": [],
    "intended_use": "Teaching and research on image restoration. Not for diagnosis: outputs may smooth, "
                    "remove or invent detail.",
}
CARD_KEYS = (*FILLED_KEYS, *CARD_DEFAULTS)


# ---------------------------------------------------------------- rendering
def headline(card: dict[str, Any]) -> str | None:
    """The card's ``scores["headline"]`` as one line (text, or "label: value; ..."), or None."""
    value = (card.get("scores") or {}).get("headline")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value) if value is not None else None


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown: every field, score lists of rows as tables, the config as JSON."""
    lines = [f"# {card['name']}", "", card["summary"], "",
             f"- default model: {'yes' if card['default'] else 'no'}",
             f"- parameters: {card['parameters']:,}",
             f"- weights: `{card['name']}.safetensors`, SHA-256 `{card['weights_sha256']}`",
             f"- guard: {_guard_text(card['guard'])}",
             "", "## Intended use", "", str(card["intended_use"]),
             "", "## Training", "", *_items(card["training"]),
             "", "## Scores", ""]
    for key, value in card["scores"].items():
        lines += [f"### {key}", "", *(_table(value) if _is_rows(value) else _items(value)), ""]
    ref = card["reference"]
    lines += ["## Reference restoration", "",
              *(_items(ref) if ref else ["(none recorded)"]),
              "", "## Limitations", "", *(f"- {x}" for x in card["limitations"] or ["(none recorded)"])]
    for key in (k for k in card if k not in CARD_KEYS):                       # fields of newer cards
        lines += ["", f"## {key}", "", *_items(card[key])]
    lines += ["", "## Config", "", "```json", json.dumps(card["config"], indent=2), "```", ""]
    return "\n".join(lines)


def _guard_text(guard: dict | None) -> str:
    if not guard:
        return "none (every input gets the model's output)"
    g = Guard.from_card(guard)
    size = "RMS" if g.change_stat == "rms" else "median |correction|"
    return (f"inputs with an estimated noise std below {g.below:g} (all of the model from {g.full:g}) "
            f"whose correction would be below {g.change_below:g} {size} (all of it from {g.change_full:g}) "
            f"are returned unchanged (medgan_nb.models.guard)")


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of `rows`; the columns are every key, in the order first seen."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return ([f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}"]
            + [f"| {' | '.join(_cell(r.get(c, '')) for c in columns)} |" for r in rows])


def _cell(value: Any) -> str:
    """A table cell: floats with 4 significant digits (31.23 dB, 0.8765 SSIM), the rest as text."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _items(value: Any) -> list[str]:
    """A dict as "- key: value" lines (nested values as JSON), a list as bullets, anything else as one line."""
    if isinstance(value, dict):
        return [f"- {k}: {v if isinstance(v, (str, int, float)) else json.dumps(v)}" for k, v in value.items()] \
            or ["(none recorded)"]
    if isinstance(value, list):
        return [f"- {v}" for v in value] or ["(none recorded)"]
    return [str(value)]
