"""Pretrained generators shipped in the package: weights only (safetensors, no pickle) beside a model card.

Each shipped model is two files in `WEIGHTS_DIR` (``medgan_nb/weights/``):

    <name>.safetensors   the generator's state dict (float32 tensors; loading it never runs code)
    <name>.json          its model card (and <name>.md, the same as Markdown, written with it):

        name, summary (one line), default (true for the one `enhance`/`evaluate` use without --checkpoint),
        guard ({below, full}: the `medgan_nb.models.guard.Guard` that leaves noise-free inputs unchanged; null: none),
        l1_parent (a GAN model's PSNR-oriented parent: the shipped model it was fine-tuned from, with the same
        architecture, so that ``load_model(name, gan_weight=a)`` can interpolate the two; null: none),
        config (Config.to_dict(): rebuilds the architecture), weights_sha256 (of the .safetensors bytes),
        parameters, training {data, split, degradations, recipe, steps, wall_minutes, machine, command, date},
        scores {free-form; a list of row dicts renders as a table; "headline" (text, or a dict of
        label: value) is what ``python -m medgan_nb models`` shows}, reference {image (path relative to the
        repository root), condition, psnr}, limitations [...], intended_use

A model gets there with ``python -m medgan_nb export CHECKPOINT --format pretrained --name NAME``
(`save_model`). `load_model` checks the weights' SHA-256 against the card before using them, and hashes
the very bytes it deserialises, so the hash it reports names the weights that ran. The card's config is the
training record and stays as trained; the `Config` that `load_model` returns reads data a user has instead
of a development-only data folder (`user_config`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..config.config import Config
from ..data.datasets import PACKAGE_ROOT
from ..utils.files import atomic_write, refuse_existing
from .build import build_generator, count_parameters
from .cards import CARD_DEFAULTS, CARD_KEYS, DEVELOPMENT_PATHS, FILLED_KEYS, LATER_KEYS, card_markdown
from .guard import Guard

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
FORMAT = "medgan_nb-pretrained"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PretrainedError(ValueError):
    """A shipped model that is unknown, missing, ambiguous or does not match its card."""


def _folder(folder: str | Path | None) -> Path:
    """`folder`, or `WEIGHTS_DIR` (read at call time, so tests can point it elsewhere)."""
    return Path(folder) if folder is not None else WEIGHTS_DIR


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PretrainedError(f"model name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
                              f"starting with a letter or digit")
    return name


def no_models_message(folder: Path) -> str:
    """What to do when `folder` holds no model: train and publish one, or use a checkpoint."""
    return (f"no pretrained models in {folder}. Train one (python -m medgan_nb train --preset lite --name my-run), "
            f"publish it with `python -m medgan_nb export output/runs/my-run/checkpoints/best.pt --format pretrained "
            f"--name my-model --default`, or pass --checkpoint RUN_OR_FILE instead")


# ------------------------------------------------------------------ reading
def list_models(folder: str | Path | None = None) -> list[str]:
    """Names of the models in `folder` (default `WEIGHTS_DIR`): every ``<name>.json`` card, sorted."""
    folder = _folder(folder)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def model_card(name: str, folder: str | Path | None = None) -> dict[str, Any]:
    """The card of model `name`; an unknown name is an error that lists the available ones."""
    folder = _folder(folder)
    available = list_models(folder)
    if name not in available:
        if not available:
            raise PretrainedError(f"unknown model {name!r}: {no_models_message(folder)}")
        raise PretrainedError(f"unknown model {name!r}; available: {', '.join(available)} "
                              f"(python -m medgan_nb models lists them)")
    path = folder / f"{name}.json"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{path} is not a readable model card: {e}") from None
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or (k not in card and k not in LATER_KEYS)]
    if missing or card["name"] != name:
        raise PretrainedError(f"{path} is not a valid model card: "
                              + (f"missing {missing}" if missing else f"it names {card['name']!r}, not {name!r}"))
    return {**{k: CARD_DEFAULTS[k] for k in LATER_KEYS}, **card}


def default_model(folder: str | Path | None = None) -> str:
    """The name of the one model whose card says ``"default": true``; an error if none or several do."""
    folder = _folder(folder)
    names = list_models(folder)
    if not names:
        raise PretrainedError(no_models_message(folder))
    marked = [n for n in names if model_card(n, folder)["default"] is True]
    if len(marked) != 1:
        problem = "none of them is" if not marked else f"{len(marked)} of them ({', '.join(marked)}) are"
        raise PretrainedError(f"{folder} holds {', '.join(names)} but {problem} marked \"default\": true in its "
                              f"card; choose one with --model NAME")
    return marked[0]


def load_model(name: str | None = None, device: str | torch.device = "cpu",
               folder: str | Path | None = None, gan_weight: float | None = None) -> tuple[nn.Module, Config, dict[str, Any]]:
    """(generator in eval mode on `device`, its config, its card) of model `name` (None: the default one).

    The config is the card's, with a development-only data folder replaced by the user's (`user_config`);
    ``Config.from_dict(card["config"])`` is the config exactly as trained.
    Raises `PretrainedError` if the weights' SHA-256 differs from the card's. The generator carries
    ``checkpoint_sha256`` (the weights' hash) and ``model_name`` so outputs can name what made them, and
    ``guard`` (the card's `Guard`, or None), which `enhance` and `evaluate` apply to its outputs.

    gan_weight: for a GAN model with an ``l1_parent`` in its card, the weights (1 - a) * parent + a * GAN
    (``torch.lerp``: a = 0 is the parent exactly, 1 the GAN model exactly), a in [0, 1]: one knob between
    the smooth PSNR-oriented restoration and the sharper adversarial one, as ESRGAN's network interpolation
    (Wang et al. 2018). The model name then reads ``"<name>@gan_weight=<a>"``. PretrainedError for a model
    without a parent or an `a` outside [0, 1].
    """
    folder = _folder(folder)
    name = name if name is not None else default_model(folder)
    card, weights, sha = _read_weights(name, folder)
    if gan_weight is not None:
        weights = _interpolated(card, weights, float(gan_weight), folder)
        name = f"{name}@gan_weight={float(gan_weight):g}"
    try:
        cfg = Config.from_dict(card["config"])
        generator = build_generator(cfg)
        generator.load_state_dict(weights)
    except (KeyError, ValueError, RuntimeError) as e:
        raise PretrainedError(f"model {card['name']!r}: its card's config does not rebuild its weights: "
                              f"{e.args[0] if e.args else e}") from None
    cfg = user_config(cfg, card["name"])
    generator.checkpoint_sha256 = sha
    generator.model_name = name
    generator.guard = Guard.from_card(card["guard"]) if card.get("guard") else None
    return generator.to(device).eval(), cfg, card


def _read_weights(name: str, folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """(card, state dict, SHA-256) of model `name`, checked against the card (hashing the bytes deserialised)."""
    from safetensors.torch import load
    card = model_card(name, folder)
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        raise PretrainedError(f"model {name!r} has a card but no weights file {path}")
    data = path.read_bytes()                     # hash and load the same bytes
    sha = hashlib.sha256(data).hexdigest()
    if sha != card["weights_sha256"]:
        raise PretrainedError(f"{path} does not match its card: SHA-256 {sha} but the card records "
                              f"{card['weights_sha256']}; the file is damaged or was replaced without its card. "
                              f"Publish it again with `python -m medgan_nb export ... --format pretrained --overwrite`")
    return card, load(data), sha


def _interpolated(card: dict[str, Any], weights: dict[str, torch.Tensor], gan_weight: float,
                  folder: Path) -> dict[str, torch.Tensor]:
    """The GAN model's weights interpolated towards its ``l1_parent``'s (see `load_model`)."""
    parent = card.get("l1_parent")
    if not parent:
        raise PretrainedError(f"model {card['name']!r} has no l1_parent in its card, so there is nothing to "
                              f"interpolate with; --gan-weight works with a GAN model such as "
                              f"{', '.join(n for n in list_models(folder) if model_card(n, folder).get('l1_parent')) or 'none here'}")
    if not 0.0 <= gan_weight <= 1.0:
        raise PretrainedError(f"gan_weight must be between 0 (the L1 model {parent!r}) and 1 (the GAN model "
                              f"{card['name']!r}), got {gan_weight:g}")
    _, parent_weights, _ = _read_weights(parent, folder)
    if parent_weights.keys() != weights.keys():
        raise PretrainedError(f"model {card['name']!r} and its l1_parent {parent!r} have different architectures")
    return {k: torch.lerp(parent_weights[k], v, gan_weight) if v.is_floating_point() else v
            for k, v in weights.items()}


def user_config(cfg: Config, name: str = "this model") -> Config:
    """`cfg` reading data a user has when its ``data_dir`` is a development-only folder (`DEVELOPMENT_PATHS`):
    the same data set's user folder (e.g. data/Kvasir-SEG after ``python -m medgan_nb data download
    kvasir-seg``) when it holds images, in the working directory or else the repository, as an absolute path;
    otherwise ``None``, the default data (`medgan_nb.data.datasets.data_source`), with one log line saying so.
    Any other config is returned unchanged.
    """
    user = DEVELOPMENT_PATHS.get(cfg.data_dir or "")
    if user is None:
        return cfg
    for folder in (Path.cwd() / user, PACKAGE_ROOT / user):
        if (folder / "images").is_dir():
            return cfg.replace(data_dir=str(folder.resolve()))
    log.info("model %r was trained on %s, which is not here; its config reads the default data (the shipped "
             "sample) instead: `python -m medgan_nb data download kvasir-seg` fetches the full data set", name, user)
    return cfg.replace(data_dir=None)


# ------------------------------------------------------------------ writing
def save_model(generator: nn.Module, cfg: Config, name: str, card_fields: dict[str, Any],
               folder: str | Path | None = None, overwrite: bool = False) -> Path:
    """Publish `generator` as model `name`: ``<name>.safetensors`` and ``<name>.json`` in `folder`.

    card_fields: the card's hand-written fields (summary, default, training, scores, reference, limitations,
    intended_use; see the module docstring); name, config, weights_sha256 and parameters are filled here.
    Both files are written atomically (weights first, so a card never names missing weights). Returns the
    weights file. Refuses existing files unless ``overwrite=True``, and a second default model always.
    """
    from safetensors.torch import save
    folder = _folder(folder)
    state = _plain_state(generator, cfg)
    card = _new_card(_check_name(name), card_fields)
    weights, card_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not overwrite:
        refuse_existing([weights, card_path], "pass overwrite=True (--overwrite) to replace")
    if card["default"]:
        others = [n for n in list_models(folder) if n != name and model_card(n, folder)["default"] is True]
        if others:
            raise PretrainedError(f"{others[0]!r} is already the default model in {folder}; set \"default\": false "
                                  f"in its card first, or publish {name!r} without --default")
    # one metadata entry: safetensors keeps metadata in a hash map, so several keys come out in a random
    # order and the same weights would get a new SHA-256 every time they are published
    about = json.dumps({"format": FORMAT, "name": name, "medgan_nb_version": __version__}, sort_keys=True)
    data = save(state, metadata={"medgan_nb": about})
    card.update(config=cfg.to_dict(), weights_sha256=hashlib.sha256(data).hexdigest(),
                parameters=count_parameters(generator))
    text = json.dumps({k: card[k] for k in CARD_KEYS}, indent=2, allow_nan=False) + "\n"   # fails before writing
    with atomic_write(weights) as f:
        f.write(data)
    with atomic_write(card_path) as f:
        f.write(text.encode("utf-8"))
    with atomic_write(folder / f"{name}.md") as f:          # the card for readers (README links it)
        f.write(card_markdown({k: card[k] for k in CARD_KEYS}).encode("utf-8"))
    return weights


def _plain_state(generator: nn.Module, cfg: Config) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors (floats as float32), after checking that `cfg` rebuilds it."""
    state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous().clone()
             for k, v in generator.state_dict().items()}
    try:
        build_generator(cfg).load_state_dict(state)
    except RuntimeError as e:
        raise PretrainedError(f"the config does not describe this generator (a BatchNorm-folded or otherwise "
                              f"changed copy?): {str(e).splitlines()[0]}") from None
    return state


def _new_card(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """`CARD_DEFAULTS` updated with `fields`, checked: known keys only, a one-line summary, a bool default,
    a valid guard."""
    if not isinstance(fields, dict):
        raise PretrainedError(f"card fields must be a dict, got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(CARD_DEFAULTS))
    if unknown:
        raise PretrainedError(f"unknown card field(s) {unknown} ({', '.join(FILLED_KEYS)} are filled in "
                              f"automatically); valid: {', '.join(CARD_DEFAULTS)}")
    card = {"name": name, **CARD_DEFAULTS, **fields}
    if not isinstance(card["summary"], str) or not card["summary"].strip() or "\n" in card["summary"]:
        raise PretrainedError(f"the card needs a one-line \"summary\", got {card['summary']!r}")
    if not isinstance(card["default"], bool):
        raise PretrainedError(f"\"default\" must be true or false, got {card['default']!r}")
    if card["guard"] is not None:
        try:
            Guard.from_card(card["guard"])
        except (TypeError, ValueError) as e:
            raise PretrainedError(f"\"guard\" must be null or {{\"below\": ..., \"full\": ...}} with "
                                  f"0 <= below < full, got {card['guard']!r} ({e})") from None
    return card
