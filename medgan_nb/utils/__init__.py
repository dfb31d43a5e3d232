"""Small helpers every layer may use: [-1, 1] <-> [0, 1] image conversions and display windows, atomic
files and SHA-256, per-key seeding, facts about this machine. `medgan_nb.utils.plots` (matplotlib) is
imported on its own, not re-exported here.
"""
from .images import to_unit, from_unit, to_numpy_images, from_numpy_images, WINDOWS, window, percentile_window
from .files import atomic_write, file_sha256, refuse_existing
from .text import markdown_table
from .seeding import seed_for, seed_epoch
from .hardware import cpu_model, machine, BF16_FLAGS, cpu_flags, bf16_native, version_of, device_line
