"""Scoring restorations: classical baselines, the degradation conditions, the methods that restore,
the scoring core (`scoring`), `evaluate` (`core`), its noise × blur grid (`grid`) and its per-centre rows
(`centres`), the Markdown report and its plots, and the CT/MRI/X-ray evaluation (`scans`).
"""
from .baselines import (Baseline, identity, median, gaussian, estimate_noise_std, nlm, tv, bilateral, BM3D_MISSING,
                        cbm3d, median_cbm3d, BASELINES, FAST_BASELINES, NEEDS_BM3D, missing_reason)
from .conditions import (EVAL_SEED, EVAL_SYNTHETIC_FRAMES, GOAL_CONDITIONS, GOAL_BASELINES, NOT_CONDITION_FIELDS,
                         GRID_NOISE_STDS, GRID_BLUR_SIGMAS, GRID_BLUR_KERNEL, GRID_BASELINES, NO_HARM_DB, conditions_of,
                         build_degraders, grid_conditions, evaluation_config)
from .methods import LABELS, run_gan, run_baseline, run_method
from .report import (ERROR_QUANTILE, REFERENCE_PSNR, REFERENCE_SSIM, summarize, summarize_lesions, report_markdown, psnr_table,
                     condition_table, side_by_side)
from .plots import (GRID_COLOUR_DB, plot_bars, plot_cases, plot_error_maps, plot_lesions,
                    GRID_PANELS, plot_grid, draw_grid_panel)
from .scoring import (Row, LesionRow, LESION_MEASURES, Scores, score, lesion_rows, lesion_box, aggregate,
                      aggregate_lesions)
from .core import (CSV_COLUMNS, LESION_COLUMNS, HALVES, Model, evaluate, evaluate_goals, dataset_masks, evaluation_data,
                   half_of, in_half, write_results, reference_psnr)
from .centres import ALL, centre_folders, centre_tables, centres_markdown, evaluate_centres
from .grid import evaluate_grid, grid_table
from .scans import (CONDITIONS, READER_WINDOW, run_model, score_slice, methods_for, evaluate_scans, restore_all, markdown,
                    write_report)
