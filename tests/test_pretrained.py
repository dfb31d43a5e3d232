"""Shipped pretrained models (medgan_nb.models.zoo): safetensors + model card, checked on load, used by the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medgan_nb.evaluation.core as evaluation_core
import medgan_nb.models.cards as cards
import medgan_nb.models.zoo as models_zoo
from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.inference.files import enhance
from medgan_nb.models import (
    PretrainedError,
    build_generator,
    card_markdown,
    count_parameters,
    default_model,
    list_models,
    load_checkpoint,
    load_generator,
    load_model,
    model_card,
    save_checkpoint,
    save_model,
)
from medgan_nb.utils import file_sha256

REPO = Path(__file__).resolve().parents[1]
SCORES = {"headline": {"blur+noise": "+1.2 dB over NLM"},
          "test split": [{"method": "gan", "psnr": 30.123456, "ssim": 0.87654}, {"method": "nlm", "psnr": 28.9}]}


def tiny_generator(seed=0):
    """A tiny generator with random weights and random BatchNorm statistics (so buffers are checked too)."""
    torch.manual_seed(seed)
    generator = build_generator(Config.from_preset("tiny"))
    with torch.no_grad():
        for buffer in generator.buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand_like(buffer))
    return generator


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A weights folder holding tiny-a (the default) and tiny-b; the package's WEIGHTS_DIR points at it."""
    folder = tmp_path / "weights"
    cfg = Config.from_preset("tiny")
    save_model(tiny_generator(0), cfg, "tiny-a", {"summary": "a tiny test model", "default": True,
                                                  "scores": SCORES, "limitations": ["only a test"]}, folder)
    save_model(tiny_generator(1), cfg, "tiny-b", {"summary": "another one"}, folder)
    monkeypatch.setattr(models_zoo, "WEIGHTS_DIR", folder)
    return folder


def test_round_trip_gives_identical_tensors_and_a_complete_card(tmp_path):
    generator, cfg = tiny_generator(), Config.from_preset("tiny")
    weights = save_model(generator, cfg, "m", {"summary": "s"}, tmp_path)
    loaded, loaded_cfg, card = load_model("m", folder=tmp_path)
    assert weights == tmp_path / "m.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.md", "m.safetensors"]
    original, restored = generator.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded_cfg == cfg and not loaded.training and loaded.model_name == "m"
    assert loaded.checkpoint_sha256 == card["weights_sha256"] == file_sha256(weights)
    assert card["config"] == cfg.to_dict() and card["parameters"] == count_parameters(generator) > 0
    assert card["default"] is False and "not for diagnosis" in card["intended_use"].lower()
    assert json.loads((tmp_path / "m.json").read_text()) == card
    assert (tmp_path / "m.md").read_text() == card_markdown(card)
    from safetensors import safe_open  # a plain safetensors file, tagged as ours
    with safe_open(str(weights), "pt") as f:
        about = json.loads(f.metadata()["medgan_nb"])
        assert about["format"] == models_zoo.FORMAT and about["name"] == "m"
    first = weights.read_bytes()
    for _ in range(5):                                        # the same weights: the same bytes, the same SHA-256
        save_model(generator, cfg, "m", {"summary": "again"}, tmp_path, overwrite=True)
        assert weights.read_bytes() == first


def test_a_changed_weights_file_is_refused(folder):
    path = folder / "tiny-a.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01                                          # one bit of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"tiny-a.safetensors does not match its card: SHA-256 .* damaged"):
        load_model("tiny-a", folder=folder)


def test_unknown_names_list_the_available_ones(folder, tmp_path):
    with pytest.raises(PretrainedError, match=r"unknown model 'nope'; available: tiny-a, tiny-b"):
        load_model("nope")
    with pytest.raises(PretrainedError, match=r"no pretrained models in .*--format pretrained.*--checkpoint"):
        load_model(None, folder=tmp_path / "empty")
    assert list_models() == ["tiny-a", "tiny-b"] and list_models(tmp_path / "nowhere") == []


def test_the_default_model_is_the_one_marked(folder, tmp_path):
    assert default_model() == "tiny-a" and load_model()[2]["name"] == "tiny-a"
    unmarked = tmp_path / "unmarked"
    save_model(tiny_generator(), Config.from_preset("tiny"), "x", {"summary": "s"}, unmarked)
    with pytest.raises(PretrainedError, match=r"holds x but none of them is marked \"default\": true"):
        load_model(folder=unmarked)


def test_a_second_default_is_refused(folder):
    with pytest.raises(PretrainedError, match=r"'tiny-a' is already the default model"):
        save_model(tiny_generator(), Config.from_preset("tiny"), "tiny-c", {"summary": "s", "default": True}, folder)
    assert list_models() == ["tiny-a", "tiny-b"]


def test_existing_models_are_not_overwritten_unless_asked(folder):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(FileExistsError, match=r"tiny-b.safetensors and .*tiny-b.json already exist"):
        save_model(tiny_generator(5), Config.from_preset("tiny"), "tiny-b", {"summary": "new"}, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    save_model(tiny_generator(5), Config.from_preset("tiny"), "tiny-b", {"summary": "new"}, folder, overwrite=True)
    generator, _, card = load_model("tiny-b")
    expected = tiny_generator(5).state_dict()
    assert card["summary"] == "new" and all(torch.equal(v, expected[k]) for k, v in generator.state_dict().items())


@pytest.mark.parametrize("name, fields, message", [
    ("../up", {"summary": "s"}, "model name '../up' is not allowed"),
    ("m", {"summary": "s", "weights_sha256": "0"}, r"unknown card field\(s\) \['weights_sha256'\]"),
    ("m", {"summary": "two\nlines"}, "one-line \"summary\""),
    ("m", {}, "one-line \"summary\""),
    ("m", {"summary": "s", "default": "yes"}, "\"default\" must be true or false"),
])
def test_bad_names_and_card_fields_are_refused_before_writing(tmp_path, name, fields, message):
    with pytest.raises(PretrainedError, match=message):
        save_model(tiny_generator(), Config.from_preset("tiny"), name, fields, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_a_config_that_does_not_rebuild_the_generator_is_refused(tmp_path):
    with pytest.raises(PretrainedError, match="the config does not describe this generator"):
        save_model(tiny_generator(), Config.from_preset("tiny", base_channels=4), "m", {"summary": "s"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_damaged_cards_are_named(folder):
    (folder / "tiny-b.json").write_text('{"name": "tiny-b"}')
    with pytest.raises(PretrainedError, match=r"tiny-b.json is not a valid model card: missing \['config', 'weights"):
        load_model("tiny-b")
    (folder / "tiny-a.safetensors").unlink()
    with pytest.raises(PretrainedError, match="'tiny-a' has a card but no weights file"):
        load_model("tiny-a")


def test_card_markdown_shows_every_field_and_score_tables(folder):
    text = card_markdown(models_zoo.model_card("tiny-a"))
    card = models_zoo.model_card("tiny-a")
    front, body = text.split("\n---\n", 1)
    assert front.startswith("---\nlibrary_name: medgan_nb\nlicense: mit\n") and "- image-restoration" in front
    assert "metrics:\n- psnr\n- ssim" in front and body.startswith("\n# tiny-a\n\na tiny test model\n")
    assert card["weights_sha256"] in text and "- default model: yes" in text
    assert f"- parameters: {card['parameters']:,}" in text
    assert "| method | psnr | ssim |\n|---|---|---|\n| gan | 30.1 | 0.88 |\n| nlm | 28.9 |  |" in text
    assert "- blur+noise: +1.2 dB over NLM" in text and "- only a test" in text
    assert '"base_channels": 8' in text and text.endswith("```\n")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(cards.SECTIONS)


def test_card_numbers_are_rounded_for_readers_and_kept_in_the_json(tmp_path):
    rows = [{"condition": "blur_noise", "model": 30.7349, "identity": 22.5213, "model_ssim": 0.83712,
             "model_ms": 57.24, "psnr": 30.7349, "ssim": 0.83712}]
    scores = {"goals": rows, "speed": {"ms_per_frame": 6.83, "backends_ms": {"torch": 26.64}},
              "grid": {"noise_stds": [0.0, 0.075], "blur_sigmas": [0.0, 1.5],
                       "model_minus_identity": [[0.0, 0.1234], [11.0507, 9.2729]], "no_harm_db": -0.1}}
    save_model(tiny_generator(), Config.from_preset("tiny"), "m", {"summary": "s", "scores": scores,
               "training": {"wall_minutes": 92.1234, "steps": 12000}}, tmp_path)
    card = json.loads((tmp_path / "m.json").read_text())
    text = (tmp_path / "m.md").read_text()
    assert card["scores"]["goals"] == rows                                      # the JSON: full precision
    assert "| condition | model | identity | model_ssim | model_ms | psnr | ssim |" in text
    assert "| blur_noise | 30.7 | 22.5 | 0.84 | 57 | 30.7 | 0.84 |" in text
    assert "- ms_per_frame: 6.8" in text and "- backends_ms: torch: 27" in text
    assert "| noise std / blur sigma | 0 | 1.5 |" in text and "| 0.075 | 11.1 | 9.3 |" in text
    assert "- wall_minutes: 92.1\n" in text and "- steps: 12,000" in text and "- no_harm_db: -0.1" in text


@pytest.mark.parametrize("key, value, shown", [
    ("psnr", 30.7349, "30.7"), ("model_ssim", 0.83712, "0.84"), ("model_ms", 51.0, "51"), ("ms", 6.83, "6.8"),
    ("cbm3d_in", 31.04, "31.0"), ("parameters", 908292, "908,292"), ("noise_std", 0.075, "0.075"),
    ("change_below", 0.0115, "0.0115"), ("wall_minutes", 65.43, "65.4"), ("backends_ms.torch", 26.6, "27"),
    ("does_no_harm", True, "yes"), ("blur_sigma", [0.0, 2.0], "[0, 2]"), ("classics", ["nlm", "tv"], "nlm, tv"),
])
def test_card_values_are_formatted_by_their_key(key, value, shown):
    assert cards._fmt(key, value) == shown


def test_development_data_paths_are_shown_and_loaded_as_the_users_folder(tmp_path, monkeypatch):
    development = next(iter(cards.DEVELOPMENT_PATHS))
    cfg = Config.from_preset("tiny", data_dir=development)
    save_model(tiny_generator(), cfg, "m", {"summary": "s", "training": {"data": f"Kvasir-SEG ({development})"}},
               tmp_path)
    assert json.loads((tmp_path / "m.json").read_text())["config"]["data_dir"] == development   # the record
    assert development not in (tmp_path / "m.md").read_text()
    assert "- data: Kvasir-SEG (data/Kvasir-SEG)" in (tmp_path / "m.md").read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(models_zoo, "PACKAGE_ROOT", tmp_path / "no-repository")
    assert load_model("m", folder=tmp_path)[1].data_dir is None          # the default data: the shipped sample
    (tmp_path / "data" / "Kvasir-SEG" / "images").mkdir(parents=True)    # after `data download kvasir-seg`
    assert load_model("m", folder=tmp_path)[1].data_dir == str(tmp_path.resolve() / "data" / "Kvasir-SEG")


# ------------------------------------------------------------------ checkpoints with an EMA
@pytest.mark.parametrize("ema", ["weights", None, "absent"])
def test_load_generator_prefers_the_ema_weights(tmp_path, ema):
    cfg = Config.from_preset("tiny")
    state = {"config": cfg.to_dict(), "generator": tiny_generator(0).state_dict()}
    if ema != "absent":
        state["generator_ema"] = tiny_generator(1).state_dict() if ema == "weights" else None
    generator, _ = load_generator(save_checkpoint(state, tmp_path / "c.pt"))
    expected = tiny_generator(1 if ema == "weights" else 0).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in generator.state_dict().items())
    assert generator.checkpoint_weights == ("generator_ema" if ema == "weights" else "generator")


# ------------------------------------------------------------------ command line
def test_models_command_lists_and_shows_cards(folder, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    params = f"{models_zoo.model_card('tiny-a')['parameters']:,}"
    assert "* tiny-a" in out and "  tiny-b" in out and params in out and "a tiny test model" in out
    assert "scores: blur+noise: +1.2 dB over NLM" in out
    assert main(["models", "tiny-b"]) == 0 and "\n---\n\n# tiny-b\n\nanother one\n" in capsys.readouterr().out
    assert main(["models", "nope"]) == 1 and "available: tiny-a, tiny-b" in capsys.readouterr().err


def test_models_command_without_models_says_how_to_publish_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(models_zoo, "WEIGHTS_DIR", tmp_path)
    assert main(["models"]) == 0 and "--format pretrained" in capsys.readouterr().out
    for argv in (["enhance", str(tmp_path), "--out", str(tmp_path / "o")], ["evaluate", "--out", str(tmp_path / "e")]):
        assert main(argv) == 1 and "no pretrained models" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "e").exists()


def test_evaluate_names_unknown_models(folder, tmp_path, capsys):
    assert main(["evaluate", "--model", "nope", "--out", str(tmp_path / "e")]) == 1
    assert "available: tiny-a, tiny-b" in capsys.readouterr().err and not (tmp_path / "e").exists()


@pytest.fixture
def frame(tmp_path):
    path = tmp_path / "in" / "frame.jpg"
    path.parent.mkdir()
    Image.new("RGB", (40, 36), (180, 90, 70)).save(path)
    return path


@pytest.mark.parametrize("flags, name", [(["--model", "tiny-b"], "tiny-b"), ([], "tiny-a")])
def test_enhance_with_a_shipped_model_names_it_in_png_and_audit_log(folder, frame, tmp_path, capsys, flags, name):
    out = tmp_path / "out"
    assert main(["enhance", str(frame), "--out", str(out), "--quiet", *flags]) == 0
    sha = models_zoo.model_card(name)["weights_sha256"]
    png = Image.open(out / "frame.png")
    assert png.text["medgan_nb:model"] == name and png.text["medgan_nb:checkpoint_sha256"] == sha
    record = json.loads((out / "audit.jsonl").read_text())
    assert (record["model"], record["checkpoint_sha256"], record["checkpoint"]) == (name, sha, None)
    said = capsys.readouterr().out
    assert ("using the default shipped model 'tiny-a'" in said) == (not flags)


def test_model_and_checkpoint_together_are_an_error(folder, frame, tmp_path, capsys):
    for argv in (["enhance", str(frame), "--out", str(tmp_path / "o"), "--model", "tiny-a", "--checkpoint", "x"],
                 ["evaluate", "x", "--model", "tiny-a"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real tiny training run (1 epoch on a few images, about a second) and a copy of its checkpoint with an EMA."""
    from medgan_nb.training import train
    base = tmp_path_factory.mktemp("trained")
    cfg = Config.from_preset("tiny", output_dir=str(base), epochs=1, max_images=8, synthetic_frames=4)
    run = train(cfg, name="r", quiet=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    state["generator_ema"] = tiny_generator(7).state_dict()
    return run, save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")},
                                base / "with_ema.pt")


def test_export_pretrained_publishes_a_loadable_model(trained, tmp_path, capsys):
    run, _ = trained
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"summary": "from a test run", "training": {"machine": "2 CPU cores"}}))
    argv = ["export", str(run), "--format", "pretrained", "--name", "exp", "--out", str(tmp_path / "w"),
            "--card", str(card), "--default"]
    assert main(argv) == 0 and "published model 'exp'" in capsys.readouterr().out
    generator, _, card = load_model(folder=tmp_path / "w")
    reference, _ = load_generator(run)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in generator.state_dict().items())
    assert card["summary"] == "from a test run" and card["default"] is True
    training = card["training"]
    assert training["machine"] == "2 CPU cores" and training["weights"] == "generator" and training["steps"] > 0
    assert training["checkpoint_sha256"] == reference.checkpoint_sha256
    assert main(argv) == 1 and "already exist" in capsys.readouterr().err


def test_export_pretrained_takes_the_ema_weights(trained, tmp_path, capsys):
    _, with_ema = trained
    assert main(["export", str(with_ema), "--format", "pretrained", "--name", "ema", "--out", str(tmp_path)]) == 0
    generator, _, card = load_model("ema", folder=tmp_path)
    expected = tiny_generator(7).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in generator.state_dict().items())
    assert card["training"]["weights"] == "generator_ema" and card["default"] is False


@pytest.mark.parametrize("argv, message", [
    (["--format", "pretrained"], "needs --name NAME"),
    (["--format", "onnx", "--name", "x"], "--name, --card and --default belong to --format pretrained"),
])
def test_export_pretrained_flags_are_checked(trained, capsys, argv, message):
    assert main(["export", str(trained[1]), *argv]) == 1 and message in capsys.readouterr().err


# ------------------------------------------------------------------ the models really shipped
SHIPPED = list_models(models_zoo.WEIGHTS_DIR)


@pytest.mark.parametrize("name", SHIPPED or [pytest.param(None, marks=pytest.mark.skip(reason="no shipped models"))])
def test_shipped_models_load_and_restore_their_reference_frame(name):
    generator, _, card = load_model(name, folder=models_zoo.WEIGHTS_DIR)
    assert file_sha256(models_zoo.WEIGHTS_DIR / f"{name}.safetensors") == card["weights_sha256"]
    reference = card["reference"]
    assert reference and (REPO / reference["image"]).is_file(), f"{name}: its card's reference image is not shipped"
    assert evaluation_core.reference_psnr(generator, card) == pytest.approx(reference["psnr"], abs=0.05)


def test_evaluate_scores_a_shipped_model_and_names_it(folder, tmp_path):
    metrics = evaluation_core.evaluate(None, tmp_path / "e", cfg=Config.from_preset("tiny", max_images=0), model="tiny-a",
                                       baselines=("identity",), breakdown=False, max_images=3, quiet=True)
    meta = metrics["metadata"]
    assert meta["model"] == "tiny-a" and meta["checkpoint"] is None
    assert meta["checkpoint_sha256"] == models_zoo.model_card("tiny-a")["weights_sha256"]
    assert set(metrics["results"]["all"]) == {"gan", "identity"}
    with pytest.raises(ValueError, match="not both"):
        evaluation_core.evaluate(REPO / "nothing.pt", tmp_path / "f", model="tiny-a")


def test_reference_psnr_is_the_psnr_of_the_restored_reference_frame(folder):
    generator, _, card = load_model("tiny-a")
    reference = {"image": "data/kvasir-sample/images/cju14pxbaoksp0835qzorx6g6.jpg", "condition": "blur_noise",
                 "image_size": 64}
    value = evaluation_core.reference_psnr(generator, {**card, "reference": reference})
    identity = evaluation_core.reference_psnr(torch.nn.Identity(), {**card, "reference": reference})
    assert 10 < identity < 35 and value != identity                  # blur + noise 0.075 at 64²: a real loss
    assert evaluation_core.reference_psnr(generator, {**card, "reference": reference}) == value   # fixed seed


@pytest.mark.parametrize("name", SHIPPED or [pytest.param(None, marks=pytest.mark.skip(reason="no shipped models"))])
def test_shipped_cards_markdown_is_up_to_date(name):
    card = model_card(name, models_zoo.WEIGHTS_DIR)
    text = card_markdown(card)
    assert (models_zoo.WEIGHTS_DIR / f"{name}.md").read_text() == text
    assert "guard: inputs with an estimated noise std below" in text


@pytest.mark.parametrize("name", SHIPPED or [pytest.param(None, marks=pytest.mark.skip(reason="no shipped models"))])
def test_shipped_cards_and_configs_name_no_development_path(name):
    assert "../shared" not in (models_zoo.WEIGHTS_DIR / f"{name}.md").read_text()
    assert "../shared" not in str(load_model(name, folder=models_zoo.WEIGHTS_DIR)[1].data_dir)


@pytest.fixture
def gan_folder(folder):
    """`folder` plus tiny-gan, a 'GAN fine-tune' of tiny-a (other weights, same architecture)."""
    save_model(tiny_generator(2), Config.from_preset("tiny"), "tiny-gan",
               {"summary": "a tiny GAN model", "l1_parent": "tiny-a"}, folder)
    return folder


def test_gan_weight_interpolates_between_the_l1_parent_and_the_gan_model(gan_folder):
    parent, gan = load_model("tiny-a")[0].state_dict(), load_model("tiny-gan")[0].state_dict()
    at = {a: load_model("tiny-gan", gan_weight=a)[0] for a in (0.0, 0.5, 1.0)}
    assert all(torch.equal(at[0.0].state_dict()[k], parent[k]) for k in parent)          # bit for bit
    assert all(torch.equal(at[1.0].state_dict()[k], gan[k]) for k in gan)
    for k, v in at[0.5].state_dict().items():
        expected = (parent[k] + gan[k]) / 2 if v.is_floating_point() else gan[k]
        assert torch.allclose(v, expected, atol=1e-6), k
    assert at[0.5].model_name == "tiny-gan@gan_weight=0.5"
    assert "GAN fine-tune of `tiny-a`" in (gan_folder / "tiny-gan.md").read_text()


def test_gan_weight_errors_name_the_problem(gan_folder, frame, tmp_path):
    with pytest.raises(PretrainedError, match="no l1_parent.*tiny-gan"):
        load_model("tiny-b", gan_weight=0.5)
    with pytest.raises(PretrainedError, match="between 0"):
        load_model("tiny-gan", gan_weight=1.5)
    with pytest.raises(ValueError, match="needs a shipped GAN model"):
        enhance(frame, tmp_path / "o", "some-checkpoint", gan_weight=0.5)
    assert not (tmp_path / "o").exists()


def test_enhance_gan_weight_zero_is_the_parent_bit_for_bit(gan_folder, frame, tmp_path, capsys):
    outputs = {}
    for flags, key in ((["--model", "tiny-a"], "parent"), (["--model", "tiny-gan", "--gan-weight", "0"], "a0"),
                       (["--model", "tiny-gan", "--gan-weight", "0.5"], "a05")):
        out = tmp_path / key
        assert main(["enhance", str(frame), "--out", str(out), "--quiet", "--backend", "torch", "--no-guard",
                     *flags]) == 0
        outputs[key] = (np.asarray(Image.open(out / "frame.png")), json.loads((out / "audit.jsonl").read_text()))
    assert np.array_equal(outputs["a0"][0], outputs["parent"][0])
    assert outputs["a05"][1]["model"] == "tiny-gan@gan_weight=0.5"
    assert main(["enhance", str(frame), "--out", str(tmp_path / "bad"), "--model", "tiny-b", "--gan-weight", "1"]) == 1
    assert "no l1_parent" in capsys.readouterr().err


def test_evaluate_scores_an_interpolated_gan_model_and_names_it(gan_folder, tmp_path):
    kwargs = dict(cfg=Config.from_preset("tiny"), max_images=4, device="cpu", quiet=True, baselines=(),
                  conditions={"blur_noise": {"degradations": ("blur", "noise")}})
    half = evaluation_core.evaluate(None, tmp_path / "half", model="tiny-gan", gan_weight=0.5, **kwargs)
    zero = evaluation_core.evaluate(None, tmp_path / "zero", model="tiny-gan", gan_weight=0.0, **kwargs)
    parent = evaluation_core.evaluate(None, tmp_path / "parent", model="tiny-a", **kwargs)
    assert half["metadata"]["model"] == "tiny-gan@gan_weight=0.5"
    assert zero["results"]["blur_noise"]["gan"]["psnr_mean"] == parent["results"]["blur_noise"]["gan"]["psnr_mean"]
    assert half["results"]["blur_noise"]["gan"]["psnr_mean"] != parent["results"]["blur_noise"]["gan"]["psnr_mean"]
    with pytest.raises(ValueError, match="needs a shipped GAN model"):
        evaluation_core.evaluate(None, tmp_path / "x", gan_weight=0.5, **kwargs)
