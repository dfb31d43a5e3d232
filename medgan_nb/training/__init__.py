"""Training: one optimisation step of the conditional GAN (`trainer`), the epoch loop with checkpoints,
resume and DDP (`loop`, set up by `setup`), and the run's logs (`logs`).
"""
from .logs import (METRIC_FIELDS, TB_TAGS, VAL_FIELDS, TrainingSummary, training_summary, INT_FIELDS, read_log,
                   run_complete, latest_run, phase_means)
from .trainer import TrainingDiverged, lr_factor, Trainer, make_trainer
from ..models.runner import restore   # validation's batched runner, shared with evaluation
from .setup import TRAINING_STATE
from .loop import TENSORBOARD_INSTALL, Callback, StepEnd, train
