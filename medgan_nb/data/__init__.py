"""Images in: decoding (`decode`), train/val/test splits and near-duplicates (`splits`), resizing and crops
(`transforms`), procedural endoscopy frames (`synthetic`), DICOM read (`dicom`) and written back (`dicom_write`),
CT/MRI/X-ray slices (`scans`), the datasets the trainer and evaluator use (`datasets`), and the Kvasir-SEG download
(`remote`, `fetch`).
"""
from .decode import (IMAGE_EXTENSIONS, MIN_SIDE, ImageLoadError, PIL_FORMATS, DecodedImage, load_image, decode_image,
                     list_images, find_layout)
from .splits import SPLITS, Split, split_of, DUPLICATE_CORRELATION, thumbnail_signature, duplicate_groups
from .transforms import to_tensor, random_crop
from .synthetic import (smooth_noise, smoothstep, rgb, field_of_view, folds, polyp_dome, lines, mucosa_albedo, debris,
                        specular_highlights, screen_overlays, endoscopy_frame, endoscopy_frames)
from .dicom import (PIXEL_KEYWORDS, DicomError, DicomTooLargeError, NoPixelDataError, DicomImage, files_by_kind,
                    is_dicom, list_dicom, read_dicom, read_series, sort_slices, to_unit_range, unreadable_files)
from .dicom_write import (AI_MARK, SOURCE_PURPOSE, SERIES_NUMBER_OFFSET, DerivedSeries, derived_series, write_derived,
                          derived_dataset, derivation_text)
from .scans import (MODALITY_OF_DICOM, PERCENTILES, PHANTOM, DATA_HINT, Scan, SAMPLE_SCANS, Slice, window_of, to_model,
                    from_model, sample_scan_path, phantom_hu, slices_of, sample_slices, folder_slices, modality_slices,
                    modality_degradation, ct_degradation, degrade_slice, ct_reference, ScanPairs, modality_dataset)
from .datasets import (ImageFolderDataset, mask_of, EmbeddedPatchDataset, SyntheticEndoscopyDataset, dataset_keys,
                       CachedDataset, PACKAGE_ROOT, SHIPPED_DATA, SYNTHETIC, data_source, default_dataset)
from .remote import RemoteDataset, DATASETS
from .fetch import DownloadError, verify, safe_extract, download
