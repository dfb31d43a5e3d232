"""The lessons' and README's figures: degradation explorers, architecture and training plots, the
showcase comparison, the CT/MRI/X-ray figures, and what a GAN model adds (`gan`).
"""
from ..utils.plots import image_grid, to_image
from .architecture import IMAGING_CHAIN, imaging_chain_figure, logit_footprint, receptive_field_figure
from .explorer import (show_sliders, degradation_explorer, degradation_widget, NO_IPYWIDGETS, STATIC_SETTINGS, explorer_degrade,
                       degradation_strengths_figure, show_degradation_explorer)
from .training import plot_training, plot_gradient_flow
from .showcase import Comparison, best_available_classic, compare, hero_figure
from .ct import (ct_hu, ct_noise, ct_noise_std, ct_chain_figure, noise_spectrum, ct_noise_vs_image_noise_figure,
                 ct_dose_curve, ct_sparse_views_figure)
from .scans import (SOFT, STATIC_STRENGTHS, reader_view, psnr_of, scans_markdown, mri_chain_figure, mri_motion_figure,
                    rician_bias_figure, xray_figure, explorer_slices, modality_explorer, modality_strengths_figure,
                    modality_widget, show_modality_explorer, val_psnr_figure, restorations, comparison_figure,
                    dicom_windows_figure, dicom_pair_figure, NAMES, DERIVED_TAGS, comparison_sentences,
                    dicom_tags_markdown)
from .gan import (GAN_WEIGHTS, perception_distortion_figure, lesion_comparison_figure, restore_at, gan_weight_figure,
                  show_gan_weight)
