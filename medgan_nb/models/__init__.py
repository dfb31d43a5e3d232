"""Networks and what carries them: one file per network (`unet`, `nafnet`, `discriminator`), the registry
that builds them from a `Config` (`build`), checkpoints, the output guard, the tiled runner that restores one image of any size (`runner`), and the shipped
model zoo with its cards.
"""
from .unet import down_block, up_block, UNetGenerator
from .nafnet import LayerNorm2d, SimpleGate, NAFBlock, NAFNetGenerator
from .discriminator import PatchDiscriminator
from .build import (GENERATORS, eval_mode, init_weights, build_generator, build_discriminator, count_parameters, summary, receptive_field,
                    resolve_device, layer_table)
from .guard import SAMPLES, MAD_TO_STD, MASK_NORM, noise_level, noise_levels, CHANGE_STATS, change_of, Guard
from .runner import enhance_array
from .checkpoint import (FORMAT, CheckpointError, make_run_dir, save_checkpoint, copy_checkpoint, checkpoint_path,
                         run_folder_of, load_checkpoint, load_generator, generator_from_state, weights_key,
                         checkpoint_config, check_run_name, remove_if_empty)
from .cards import headline, card_markdown
from .zoo import (WEIGHTS_DIR, NAME_PATTERN, FILLED_KEYS, CARD_DEFAULTS, CARD_KEYS, PretrainedError, no_models_message,
                  list_models, model_card, default_model, load_model, save_model)
