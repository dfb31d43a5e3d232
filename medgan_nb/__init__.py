"""medgan_nb: restore degraded medical images with a pix2pix-style GAN.

One module per topic, in the order the notebooks teach them:
`config` (settings and presets), `data` (images and splits), `synthetic`
(procedural endoscopy frames), `degrade` (what the model learns to undo),
`models` (UNet generator, PatchGAN discriminator), `losses`, `metrics`,
`download` (Kvasir-SEG), and the command line in `cli`.
"""
__version__ = "0.1.0"

from .config import Config  # noqa: E402,F401
