"""medgan_nb: restore degraded medical images with a pix2pix-style GAN.

One module per topic, in the order the notebooks teach them:
`config` (settings and presets), `data` (images and splits), `synthetic`
(procedural endoscopy frames), `degrade` (what the model learns to undo),
`models` (UNet generator, PatchGAN discriminator), `losses`, `metrics`,
`download` (Kvasir-SEG), and the command line in `cli`.
"""
import os

__version__ = "0.1.0"

# PyTorch's CPU threads (OpenMP, libgomp) meet at the end of every parallel region, and a thread that arrives
# first spins before it sleeps. On a machine busy with other work the spinning thread holds a core that the
# thread it waits for needs, and a training step can take many times as long (README, "Testing": speed and
# load). A shorter spin keeps an idle machine's speed and gives the core back under load. It changes no result:
# the work and its split are the same. It takes effect only if set before torch is first imported, and a value
# set in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .config import Config  # noqa: E402,F401
