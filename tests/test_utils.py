"""The small shared helpers of medgan_nb.utils and models.build: one table renderer, one overwrite check,
one eval-mode switch."""
import pytest
import torch

from medgan_nb.models import eval_mode
from medgan_nb.utils import markdown_table, refuse_existing


def test_markdown_table_has_a_header_a_separator_and_one_line_per_row():
    text = markdown_table(("method", "PSNR"), [("gan", "30.10"), ("nlm", 29.5)])
    assert text.split("\n") == ["| method | PSNR |", "|---|---|", "| gan | 30.10 |", "| nlm | 29.5 |"]
    assert markdown_table(("a",), []) == "| a |\n|---|"
    with pytest.raises(ValueError, match="2 cells, the header 3"):
        markdown_table(("a", "b", "c"), [("x", "y")])


def test_refuse_existing_names_the_taken_paths_and_writes_nothing(tmp_path):
    refuse_existing([tmp_path / "new.png"])                                  # nothing there: no error
    (tmp_path / "a.png").write_bytes(b"a")
    (tmp_path / "b.png").write_bytes(b"b")
    with pytest.raises(FileExistsError, match=r"a\.png already exists; pass overwrite=True"):
        refuse_existing([tmp_path / "a.png", tmp_path / "c.png"])
    with pytest.raises(FileExistsError, match=r"a\.png and .*b\.png already exist; use --overwrite"):
        refuse_existing([tmp_path / "a.png", tmp_path / "b.png"], "use --overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_eval_mode_restores_the_mode_it_found_even_after_an_error():
    net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    x = torch.ones(1000)
    with eval_mode(net):
        assert not net.training and torch.equal(net(x), x)               # dropout off inside
    assert net.training
    net.eval()
    with eval_mode(net):
        pass
    assert not net.training                                              # an eval model stays in eval
    net.train()
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("inside")
    assert net.training
