"""What the model learns to undo: per-image degradation ops (`ops`), the seeded pipeline that draws and
applies them (`pipeline.Degradation`), and the acquisition physics of CT, MRI and X-ray (`ct`, `mri`, `xray`,
`acquisition.ModalityDegradation`).
"""
from .ops import (gaussian_noise, salt_and_pepper, gaussian_taps, gaussian_kernels, gaussian_blur, motion_blur,
                  color_jitter, shift_hue, low_light, vignetting, specular_glare, jpeg_compression, Keys)
from .pipeline import Params, NoiseBank, Degraded, Degradation
from .ct import (MU_WATER_PER_MM, AIR_HU, FOV_MM, hu_to_mu, mu_to_hu, view_angles, full_views, outside_circle, project,
                 photon_noise, fbp, low_dose_sinogram, low_dose_ct, ELECTRONIC_NOISE, WATER_CYLINDER_MM,
                 CYLINDER_ROI_MM, water_cylinder_noise)
from .mri import (PATTERNS, kspace, magnitude_image, sampling_mask, motion_phases, mri_degrade, mri_acquire,
                  tv_reconstruction, rician_noise, undersample_kspace, motion_kspace, PHASE_RAD, ACQUIRED_ENERGY,
                  acquisition_mask, acquired_extent, mirror_lines, effective_acceleration, smooth_phase)
from .xray import (detector_blur, quantum_noise, xray_degrade, DECADES, MIN_QUANTA, to_exposure, to_display,
                   xray_noise_std)
from .acquisition import CT_WINDOW, SCAN_MODALITIES, STRENGTHS, ModalityDegradation
