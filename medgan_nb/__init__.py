"""medgan_nb: restore degraded medical images with a pix2pix-style conditional GAN.

Use it through this facade::

    import medgan_nb as mg
    mg.print_setup()                                  # versions, device, the config
    generator, cfg, card = mg.load_model("quality")   # a shipped model, in eval mode
    mg.enhance("my_frames/", "enhanced/")             # files in, labelled PNG/DICOM out
    run = mg.train(mg.Config.from_preset("demo"))     # a run folder under output/runs/
    metrics = mg.evaluate(run, "output/eval/demo")    # scores, report.md and figures

Subpackages, each importing only from the ones before it (``tests/test_layers.py`` checks it):
`utils` -> `config` -> `degrade` -> `data` -> `models`, `losses`, `metrics`, `sharpness`, `naturalness` ->
`training`, `evaluation`, `inference` -> `figures` -> `cli`. ``docs/overview.md`` maps them. Everything here loads on first use, so
``import medgan_nb`` stays fast and loads neither torch nor matplotlib.
"""
import importlib
import os

__version__ = "0.1.0"

# PyTorch's CPU threads (OpenMP, libgomp) meet at the end of every parallel region, and a thread that arrives
# first spins before it sleeps. On a machine busy with other work the spinning thread holds a core that the
# thread it waits for needs, and a training step can take many times as long. A shorter spin keeps an idle
# machine's speed and gives the core back under load; it changes no result (the work and its split are the
# same). It takes effect only if set before torch is first imported, and a value set in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

SUBPACKAGES = ("utils", "config", "degrade", "data", "models", "losses", "metrics", "sharpness", "naturalness",
               "training", "evaluation", "inference", "figures", "cli")

# facade name -> the module that defines it
FACADE = {
    "Config": "config.config", "print_setup": "config.notebook", "notebook_config": "config.notebook",
    "Degradation": "degrade.pipeline", "default_dataset": "data.datasets",
    "build_generator": "models.build", "load_model": "models.zoo", "list_models": "models.zoo",
    "model_card": "models.zoo", "load_generator": "models.checkpoint",
    "train": "training.loop", "training_summary": "training.logs",
    "evaluate": "evaluation.core", "evaluate_scans": "evaluation.scans",
    "enhance": "inference.files", "enhance_array": "models.runner", "export_onnx": "inference.export",
    "gradient_energy_ratio": "sharpness", "hf_power_ratio": "sharpness",
    "load_naturalness": "naturalness", "fit_naturalness": "naturalness",
}

__all__ = ["__version__", *SUBPACKAGES, *FACADE]


def __getattr__(name: str):
    """Import a subpackage or a facade name on first use (PEP 562)."""
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in FACADE:
        value = getattr(importlib.import_module(f".{FACADE[name]}", __name__), name)
        globals()[name] = value             # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
