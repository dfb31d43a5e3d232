"""``python -m benchmarks.library_swaps``: the hand-written code that library calls replaced, timed against them.

Each row times the old way (kept here, as it was) and the library call the package now uses, on the same input,
best of a few runs, and checks that both give the same result. One more row counts why the VGG19 features stay
built with torchvision's ``make_layers``: ``torchvision.models.vgg19()`` also builds the classifier. Prints a
Markdown table and the load average (a busy machine slows every row alike, but not by the same amount).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

RUNS = 5


def best_of(fn: Callable[[], object], runs: int = RUNS) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sha256_chunks(path: Path) -> str:                 # the old utils.files._sha256_of
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_rows(mb: int = 300) -> list[tuple[str, str, str, str]]:
    from medgan_nb.utils.files import file_sha256
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob.bin"
        path.write_bytes(np.random.default_rng(0).bytes(mb << 20))
        assert sha256_chunks(path) == file_sha256(path)
        old, new = best_of(lambda: sha256_chunks(path)), best_of(lambda: file_sha256(path))
    return [(f"SHA-256 of a {mb} MB file", "1 MB chunks", "hashlib.file_digest", f"{old:.3f} s → {new:.3f} s")]


def union_find_groups(signatures: np.ndarray, keys: list[str], threshold: float) -> list[str]:   # the old one
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in np.argwhere(np.triu(signatures @ signatures.T, 1) >= threshold):
        parent[root(int(i))] = root(int(j))
    smallest: dict[int, str] = {}
    for i, key in enumerate(keys):
        smallest[root(i)] = min(smallest.get(root(i), key), key)
    return [smallest[root(i)] for i in range(len(keys))]


def groups_rows(n: int = 5000) -> list[tuple[str, str, str, str]]:
    from medgan_nb.data.splits import DUPLICATE_CORRELATION, duplicate_groups
    rng = np.random.default_rng(0)
    base = rng.normal(size=(n // 2, 768))
    signatures = np.concatenate([base, base + 0.05 * rng.normal(size=base.shape)])   # every frame has a twin
    signatures /= np.linalg.norm(signatures, axis=1, keepdims=True)
    keys = [f"k{i:05d}" for i in rng.permutation(n)]
    assert union_find_groups(signatures, keys, DUPLICATE_CORRELATION) == duplicate_groups(signatures, keys)
    old = best_of(lambda: union_find_groups(signatures, keys, DUPLICATE_CORRELATION), 3)
    new = best_of(lambda: duplicate_groups(signatures, keys), 3)
    return [(f"near-duplicate groups of {n} frames", "union-find", "scipy connected_components",
             f"{old:.3f} s → {new:.3f} s")]


def sample_grid_rows() -> list[tuple[str, str, str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import save_image

    from medgan_nb.utils.images import to_unit
    from medgan_nb.utils.plots import image_grid
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 256):
            x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

            def old() -> None:
                fig = image_grid({"degraded": x, "restored": x, "clean": x})
                fig.savefig(Path(tmp) / "old.png", dpi=72)
                plt.close(fig)

            def new() -> None:
                save_image(to_unit(torch.cat([x, x, x])).clamp(0, 1), Path(tmp) / "new.png", nrow=4)
            rows.append((f"training sample grid, 3 × 4 images at {size}²", "matplotlib image_grid",
                         "torchvision save_image", f"{best_of(old):.3f} s → {best_of(new):.3f} s"))
    return rows


def vgg_rows() -> list[tuple[str, str, str, str]]:
    from torchvision.models import vgg19
    from torchvision.models.vgg import cfgs, make_layers
    full, features = vgg19(weights=None), make_layers(cfgs["E"])
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert [p.shape for p in full.features.parameters()] == [p.shape for p in features.parameters()]
    return [("VGG19 features for the perceptual loss: parameters built", "torchvision vgg19()",
             "torchvision make_layers (kept)", f"{count(full):.1f} M → {count(features):.1f} M")]


def main() -> int:
    from .common import machine
    print(f"# library swaps: best of {RUNS} runs; load average before: {os.getloadavg()}")
    print(f"machine: {machine(torch.device('cpu'))}\n")
    rows = [*sha256_rows(), *groups_rows(), *sample_grid_rows(), *vgg_rows()]
    print("| what | before | after | before → after |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
