"""Publish a trained run as a shipped model: weights + a model card whose every score is measured here.

    python scripts/score_classics.py output/eval-classics        # once: the classics on the same inputs
    python scripts/publish_model.py output/runs/ship-realtime-l1 realtime --default \
        --classics output/eval-classics --data ../shared/data/kvasir-seg --images 36 --grid-images 12

1. the run's best.pt (its EMA weights) -> medgan_nb/weights/<name>.safetensors (`save_model`);
2. `evaluate` on the three goal conditions, the real test split of `--data`, `--images` evenly spread frames at
   256² (the same frames and degraded inputs as the classics' runs in `--classics`, which `evaluate` checks
   by their `inputs_sha256`), lesion scores inside/outside the polyp masks, and the noise × blur grid;
3. ms per 256² frame per inference backend (`time_models.time_backends`: 2 threads, median of 30), the reference frame's PSNR (`reference_psnr`);
4. the card is rewritten with those numbers (the weights' bytes do not change).

    python scripts/publish_model.py --rescore realtime     # a published model, measured again (steps 2-4)

A GAN fine-tune (`sharp` preset) is published from the checkpoint chosen on the validation split
(``--checkpoint output/runs/RUN/checkpoints/epoch_NNN.pt``, see scripts/gan_curve.py) with ``--l1-parent
quality``; then ``python scripts/score_gan.py sharp ... --out DIR`` measures what it adds and
``--attach sharp DIR/scores.json`` puts those measures into its card (the weights do not change).

``--rescore NAME`` re-measures a published model with today's code and `Guard` defaults (after a change to
the guard or the evaluation), keeping its weights and its training record; the results go to
output/rescore/publish-NAME[-k]/.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
from datetime import date
from pathlib import Path

import torch

from medgan_nb.models import load_checkpoint, load_generator, make_run_dir
from medgan_nb.config import Config
from medgan_nb.models import Guard
from medgan_nb.evaluation import GOAL_CONDITIONS, GRID_BASELINES, evaluate, evaluate_grid, reference_psnr
from medgan_nb.training import read_log
from medgan_nb.utils import cpu_model
from medgan_nb.models import WEIGHTS_DIR, list_models, load_model, model_card, save_model
from time_models import time_backends          # scripts/time_models.py (this script's folder is on sys.path)

DOCS = Path(__file__).resolve().parents[1] / "docs"
GAN_FIGURES = {"perception_distortion.png": "gan-perception-distortion.png", "lesions.png": "gan-lesions.png"}
FIGURE_CAPTIONS = {"the perception-distortion plane, Kvasir-SEG test": "gan-perception-distortion.png",
                   "lesions: parent | GAN | clean": "gan-lesions.png",
                   "choosing the checkpoint: validation scores against CPU minutes": "gan-curve.png"}
MEASURE_COLUMNS = {"psnr_mean": "PSNR (dB)", "ssim_mean": "SSIM", "grad_ratio_mean": "gradient energy ratio",
                   "hf_ratio_mean": "HF power ratio", "naturalness_mean": "naturalness"}
# The hand-written and training fields of a card that re-timing it or attaching scores to it keeps unchanged
KEPT_FIELDS = ("summary", "default", "guard", "training", "reference", "limitations", "intended_use", "l1_parent")
REFERENCE = "data/kvasir-sample/images/cju14pxbaoksp0835qzorx6g6.jpg"     # a test-split frame that ships
GAN_LIMITATIONS = [
    "A GAN fine-tune: it adds texture that the L1 model averages away, and some of that texture is invented, not "
    "recovered. Its PSNR is lower than its parent's by design. Do not read fine texture on lesions from its "
    "output; --gan-weight moves it back towards the L1 parent (0 = the parent).",
]
LIMITATIONS = [
    "Trained on Kvasir-SEG colonoscopy frames only: other modalities, other scopes and other image scales "
    "are out of distribution.",
    "Degradations outside the training range (blur sigma > 2 px, noise std > 0.2, motion blur, JPEG, low "
    "light, glare) were not trained on; the model may leave them or make them worse.",
    "A restoration is an estimate: fine texture and small vessels can be smoothed away, and a colour shift "
    "or an invented detail is possible; the scores inside polyp masks are on the card, judge lesions on "
    "the original.",
    "The noise guard (medgan_nb.models.guard) returns inputs without measurable noise unchanged: noise-free blur is "
    "then not removed (enhance --no-guard applies the model anyway; the card's grid_without_guard shows what it "
    "does there). Its thresholds fit endoscopy frames at about 256²; richly textured images read as slightly "
    "noisy, and noise smoothed before it reached you (strong JPEG, video denoising) reads as weaker than it is.",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, nargs="?")
    p.add_argument("name", nargs="?")
    p.add_argument("--rescore", metavar="NAME", help="measure a published model again (no run needed)")
    p.add_argument("--default", action="store_true")
    p.add_argument("--summary", help="the card's one-line summary (required unless --speed-only)")
    p.add_argument("--command", help="the command that trained the run (required unless --speed-only)")
    p.add_argument("--classics", type=Path, default=Path("output/eval-classics"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--grid-images", type=int, default=12)
    p.add_argument("--no-guard", action="store_true", help="publish without the noise guard")
    p.add_argument("--checkpoint", type=Path, help="publish this checkpoint of the run instead of its best.pt")
    p.add_argument("--l1-parent", help="a GAN fine-tune's PSNR-oriented parent model (enables --gan-weight)")
    p.add_argument("--attach", nargs=2, metavar=("NAME", "SCORES_JSON"),
                   help="put scripts/score_gan.py's scores.json into a published model's card as scores.gan")
    p.add_argument("--speed-only", action="store_true",
                   help="only time the published model again (on a quiet machine) and update its card")
    args = p.parse_args()
    if args.attach:
        return attach(*args.attach)
    if args.rescore:
        args.name, args.run = args.rescore, Path("output/rescore")
        generator, _, card = load_model(args.name)
        trained = Config.from_dict(card["config"])           # the training record, not load_model's user view
        args.no_guard = card["guard"] is None
        fields = {k: card[k] for k in ("summary", "default", "training", "limitations", "intended_use", "l1_parent")}
        return publish(args, generator, trained, {**fields, "guard": card["guard"] and Guard().to_dict()})
    if not (args.run and args.name):
        p.error("give a run folder and a model name (or --rescore NAME)")
    if args.speed_only:
        return update_speed(args.name)
    if not (args.summary and args.command):
        p.error("--summary and --command are required to publish a run")
    best = args.checkpoint or args.run / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    generator, trained = load_generator(best)
    limitations = (GAN_LIMITATIONS if args.l1_parent else []) + LIMITATIONS
    publish(args, generator, trained, {
        "summary": args.summary, "default": args.default, "training": training(args, state, trained),
        "limitations": limitations if not args.no_guard else limitations[:-1], "l1_parent": args.l1_parent,
        "guard": None if args.no_guard else Guard().to_dict()})


def attach(name: str, scores_json: str) -> None:
    """Put score_gan's measures into model `name`'s card (`gan_card_scores`) and its figures into docs/ (weights
    and the other fields unchanged)."""
    generator, _, card = load_model(name)
    cfg = Config.from_dict(card["config"])
    fields = {k: card[k] for k in KEPT_FIELDS}
    folder = Path(scores_json).parent
    for source, target in GAN_FIGURES.items():
        shutil.copyfile(folder / source, DOCS / target)
    kept = {k: v for k, v in card["scores"].items() if not (k == "figures" or k.startswith("gan"))}
    scores = {**kept, **gan_card_scores(json.loads(Path(scores_json).read_text()))}
    save_model(generator, cfg, name, {**fields, "scores": scores}, overwrite=True)
    print(f"attached {scores_json} to the card of {name}")


def gan_card_scores(gan: dict) -> dict:
    """score_gan's scores.json as card entries: "gan" (what was scored), a table per set of frames ("gan_kvasir_test",
    "gan_centre_C1", ...: one row per method and the clean frames' naturalness), "gan_lesions" and the "figures"
    (paths relative to the card)."""
    def rows(scored: dict) -> list[dict]:
        return [*({"method": m, **{MEASURE_COLUMNS[k]: v for k, v in values.items() if k in MEASURE_COLUMNS}}
                  for m, values in scored["methods"].items()),
                {"method": "the clean frames themselves", "naturalness": scored["clean_naturalness"]}]
    centres = gan.get("centres", {})
    kvasir = gan["kvasir_test"]
    return {"gan": {"condition": gan["condition"], "l1_parent": gan["l1_parent"],
                    "kvasir_test_frames": kvasir["n_images"],
                    **{f"{c}_report_half_frames": v["n_images"] for c, v in centres.items()}},
            "gan_kvasir_test": rows(kvasir), **{f"gan_centre_{c}": rows(v) for c, v in centres.items()},
            "gan_lesions": gan["lesions"],
            "figures": {caption: f"../../docs/{target}" for caption, target in FIGURE_CAPTIONS.items()}}


def publish(args, generator: torch.nn.Module, trained: Config, fields: dict) -> None:
    """Write the weights with the card `fields`, measure them (`measure`) and write the card with the scores;
    on any failure the model's previous files are put back."""
    out = make_run_dir(args.run, f"publish-{args.name}")        # a new folder: earlier results stay
    files = [WEIGHTS_DIR / f"{args.name}{e}" for e in (".safetensors", ".json", ".md")]
    previous = {p: p.read_bytes() for p in files if p.is_file()}
    try:                           # the evaluations load the model by name, so it is published first ...
        save_model(generator, trained, args.name, fields, overwrite=True)
        scores = measure(args, trained, out)
        card = model_card(args.name)
        reference = {"image": REFERENCE, "condition": "blur_noise", "image_size": 256}
        reference["psnr"] = round(reference_psnr(load_model(args.name)[0], {**card, "reference": reference}), 3)
        save_model(generator, trained, args.name, {**fields, "scores": with_headline(scores), "reference": reference},
                   overwrite=True)
    except BaseException:          # ... and put back as it was if anything fails: never a card without scores
        for path in files:
            path.unlink(missing_ok=True)
        for path, data in previous.items():
            path.write_bytes(data)
        raise
    print(json.dumps(scores, indent=2))


def measure(args, trained: Config, out: Path) -> dict:
    """Goal conditions, lesions, the grid (with and without the guard) and the speed of the published model."""
    task = trained.replace(image_size=256, frame_size=256, data_dir=args.data)
    scores = goal_scores(args, task, out)
    scores["grid"] = grid_scores(args, task, out)
    if not args.no_guard:
        scores["grid_without_guard"] = grid_scores(args, task, out, guard=False)
    scores["speed"] = speed(args.name)
    return scores


def with_headline(scores: dict) -> dict:
    b, fast = scores["goals"][0], scores["speed"]
    return {**scores, "headline": {
        "blur+noise 0.075": f"{b['model']:.2f} dB (CBM3D {b['cbm3d']:.2f}, input {b['identity']:.2f})",
        "ms per 256² frame": f"{fast['ms_per_frame']} ({fast['backend']}, 2 threads, noise guard included)"}}


def update_speed(name: str) -> None:
    """Re-time a published model and rewrite its card's speed and headline (the weights do not change)."""
    generator, _, card = load_model(name)
    cfg = Config.from_dict(card["config"])                   # the training record, not load_model's user view
    scores = with_headline({**card["scores"], "speed": speed(name)})
    fields = {k: card[k] for k in KEPT_FIELDS}
    save_model(generator, cfg, name, {**fields, "scores": scores}, overwrite=True)
    print(json.dumps(scores["speed"], indent=2))


def wall_minutes(run: Path) -> float:
    """A run's wall time: from its config.json (written at the start) to its last checkpoint."""
    seconds = (run / "checkpoints" / "last.pt").stat().st_mtime - (run / "config.json").stat().st_mtime
    return round(seconds / 60, 1)


def cpu_minutes(run: Path, epoch: int) -> float:
    """The run's CPU time (val.csv's cpu_s, all threads, summed over resumes) up to the end of `epoch`."""
    log = read_log(run, "val.csv", columns=True)
    return round(dict(zip(log["epoch"], log["cpu_s"]))[epoch] / 60, 1)


def training(args, state: dict, cfg: Config) -> dict:
    return {"data": f"Kvasir-SEG train split ({args.data}; scenes kept on one side, medgan_nb.data.duplicate_groups)",
            "split": "train for training, val for choosing best.pt; scored on test",
            "degradations": {k: cfg.to_dict()[k] for k in ("degradations", "degradation_order", "degradation_p",
                                                          "blur_sigma", "blur_kernel", "noise_std", "noise_std_range",
                                                          "sp_amount", "sp_amount_range")},
            "recipe": recipe(cfg),
            "weights": (f"G at epoch {state['epoch']} ({args.checkpoint.name}), chosen on the validation split "
                        f"(scripts/gan_curve.py)" if args.checkpoint else
                        "EMA of G at the best validation epoch (best.pt)"),
            "steps": state["step"], "epochs": state["epoch"],
            **({"cpu_minutes": cpu_minutes(args.run, state["epoch"])} if args.checkpoint else
               {"wall_minutes": wall_minutes(args.run)}),
            **({"started_from": base_run(cfg)} if cfg.init_generator else {}),
            "machine": f"{cpu_model()}, 2 cores shared with other jobs, 1 torch thread, no GPU ({platform.platform()})",
            "command": args.command, "date": date.today().isoformat()}


def recipe(cfg: Config) -> str:
    loss = {"l1": "L1", "log_l1": "log-L1 (each image's L1 on a log scale, config.pixel_loss)"}[cfg.pixel_loss]
    common = (f"Adam lr {cfg.lr_g:g} betas ({cfg.beta1}, {cfg.beta2}), EMA {cfg.ema_decay}, random {cfg.image_size}² "
              f"crops at ×1-×2 of the 256² test scale, batch {cfg.batch_size}, residual output")
    if cfg.lambda_adv > 0:
        return (f"GAN fine-tuning: lambda_adv {cfg.lambda_adv}, {loss} weight {cfg.lambda_l1}, {common}; "
                f"D: PatchGAN of {cfg.d_layers} layers, {cfg.d_base_channels} base channels, input {cfg.d_input}, norm {cfg.d_norm}, "
                f"Adam lr {cfg.lr_d:g}")
    return f"{loss} only (lambda_adv = 0: PSNR-oriented), {common}" + (
        f"; lr falling linearly to 0 over {cfg.epochs} epochs" if cfg.lr_decay_start == 0 else "")


def base_run(cfg: Config) -> dict:
    """The run a fine-tune started from: its checkpoint (or shipped model), epochs, steps and wall time."""
    if cfg.init_generator in list_models():
        card = model_card(cfg.init_generator)
        return {"model": cfg.init_generator, "weights_sha256": card["weights_sha256"],
                "epochs": card["training"].get("epochs"), "steps": card["training"].get("steps")}
    state = load_checkpoint(cfg.init_generator)
    return {"checkpoint": cfg.init_generator, "epochs": state["epoch"], "steps": state["step"],
            "wall_minutes": wall_minutes(Path(cfg.init_generator).parents[1])}


def goal_scores(args, task: Config, out: Path) -> dict:
    """Model vs every classic on each goal condition (same frames and inputs as the classics' runs)."""
    rows, lesions = [], []
    for cond, over in GOAL_CONDITIONS.items():
        m = evaluate(None, out / cond, cfg=task, split="test", max_images=args.images, baselines=("identity",),
                     conditions={cond: over}, model=args.name, device="cpu", quiet=True)
        classics = json.loads((args.classics / f"classics-{cond}" / "metrics.json").read_text())
        if classics["metadata"]["inputs_sha256"] != m["metadata"]["inputs_sha256"]:
            raise SystemExit(f"{cond}: the classics were scored on other inputs; rerun them")
        row = {"condition": cond, "model": round(m["results"][cond]["gan"]["psnr_mean"], 2)}
        row.update({k: round(v["psnr_mean"], 2) for k, v in classics["results"][cond].items()})
        row["model_ssim"] = round(m["results"][cond]["gan"]["ssim_mean"], 3)
        row["model_ms"] = round(m["results"][cond]["gan"].get("ms_per_image", float("nan")), 1)
        rows.append(row)
        lesions.append(_lesions(cond, m, classics))
    return {"goals": rows, "lesions": lesions,
            "note": f"Kvasir-SEG test split, {args.images} evenly spread frames at 256² (shorter side scaled to "
                    f"256, centre crop), degraded with per-image seeds; PSNR dB; classics given the true noise std"}


def _lesions(cond: str, m: dict, classics: dict) -> dict:
    inside = {"condition": cond, "model_in": m["lesions"][cond]["gan"]["psnr_in_mean"],
              "model_out": m["lesions"][cond]["gan"]["psnr_out_mean"]}
    for method, v in classics["lesions"][cond].items():
        inside[f"{method}_in"] = v["psnr_in_mean"]
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in inside.items()}


def grid_scores(args, task: Config, out: Path, guard: bool = True) -> dict:
    """The noise × blur grid; without the guard only against the input (the classics do not change)."""
    folder, classics = (out / "grid", GRID_BASELINES) if guard else (out / "grid-without-guard", ("identity",))
    grid = evaluate_grid(None, folder, cfg=task, split="test", max_images=args.grid_images, baselines=classics,
                         model=args.name, device="cpu", quiet=True, guard=guard)
    keys = ("model_minus_identity", "model_minus_best_classic", "best_classic") if guard else ("model_minus_identity",)
    return {k: grid[k] for k in (*keys, "noise_stds", "blur_sigmas", "no_harm_db", "does_no_harm", "harmful_cells",
                                 "worst_cell")} | {
        "images": args.grid_images, "classics": list(classics), "figure": str(folder / "grid.png")}


def speed(name: str) -> dict:
    """ms per 256² frame per inference backend (`time_models.time_backends`, 2 threads) and the fastest."""
    torch.set_num_threads(2)
    ms = time_backends(name)
    torch.set_num_threads(1)
    fastest = min(ms, key=ms.get)
    return {"ms_per_frame": ms[fastest], "backend": fastest, "backends_ms": ms, "threads": 2, "cpu": cpu_model(),
            "date": date.today().isoformat(),
            "note": "median of 30, batch 1, 256², BatchNorm folded (python scripts/time_models.py); the machine's "
                    "speed varies 2-4x with load"}


if __name__ == "__main__":
    main()
