"""The public data sets `medgan_nb.data.fetch.download` knows: where each lives, how to check it, and the
rules for using it.

`DATASETS` maps a name to its `RemoteDataset`. The archive's size and SHA-256 are pinned where they are known,
so that a changed or damaged download is refused rather than used. `download` prints the terms before it
downloads and the citation once the data set is extracted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteDataset:
    """Where a data set lives, how to check it, and the rules for using it.

    ``size`` and ``sha256`` describe the archive at ``url``; either may be
    ``None`` when unknown. ``image_dir`` is the images folder inside the
    extracted tree, relative to the download folder.
    """

    name: str
    url: str
    filename: str
    size: int | None
    sha256: str | None
    image_dir: str
    citation: str
    terms: str


DATASETS: dict[str, RemoteDataset] = {
    "kvasir-seg": RemoteDataset(
        name="kvasir-seg",
        url="https://datasets.simula.no/downloads/kvasir-seg.zip",
        filename="kvasir-seg.zip",
        # Neither value is published by Simula. The SHA-256 is the one pinned
        # by torch-em (github.com/constantinpape/torch-em,
        # torch_em/data/datasets/medical/kvasir.py, CHECKSUM), and the same
        # value appears in several unrelated projects' download scripts. The
        # size, 46,227,172 bytes, comes from a project's data report that
        # quotes it together with that same SHA-256; it agrees with the
        # "46.2 MB" given by the dataset authors' MedAI starter repository
        # (github.com/Nordic-Machine-Intelligence/
        # MedAI-Transparency-in-Medical-Image-Segmentation, README.rst).
        size=46_227_172,
        sha256="03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
        image_dir="Kvasir-SEG/images",
        citation=(
            "D. Jha, P. H. Smedsrud, M. A. Riegler, P. Halvorsen, T. de Lange, "
            "D. Johansen, H. D. Johansen. Kvasir-SEG: A Segmented Polyp Dataset. "
            "MultiMedia Modeling (MMM 2020), LNCS 11962, pp. 451-462, Springer. "
            "doi:10.1007/978-3-030-37734-2_37"
        ),
        terms=(
            "Free for research and educational purposes only; commercial use "
            "needs prior written permission. Cite the Kvasir-SEG paper (Jha et al., "
            "MMM 2020) in any publication that uses the data. "
            "See https://datasets.simula.no/kvasir-seg/"
        ),
    ),
}
