"""Settings: `Config` (one flat dataclass), its presets, and the notebooks' set-up (`notebook_config`,
`print_setup`).
"""
from .config import (DEGRADATION_SETS, DEGRADATION_ORDERS, KNOWN_DEGRADATIONS, MODALITIES, PIXEL_LOSSES,
                     INFERENCE_BACKENDS, OUTPUT_ENV, default_output_dir, Config)
from .presets import WIDE_DEGRADATIONS, RESTORE_RECIPE, REALTIME_UNET, QUALITY_NAFNET, SCAN_RECIPE, PRESETS
from .notebook import repo_root, notebook_config, notebook_scan_config, CORE, OPTIONAL, setup_lines, print_setup
