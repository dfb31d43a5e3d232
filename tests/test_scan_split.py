"""A user's folder of DICOM files is split by patient, never by series: one patient's series stay together."""
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, generate_uid

from medgan_nb.data.scans import folder_slices, split_key


def ct_file(path, patient: str, study: str, series: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = patient, study, series, "CT"
    ds.RescaleSlope, ds.RescaleIntercept, ds.ImageType = 1, -1024, ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.set_pixel_data(np.full((32, 32), 1000, np.uint16), "MONOCHROME2", 16)
    ds.save_as(path, enforce_file_format=True)


def test_split_key_prefers_the_patient_then_the_study_then_the_series():
    ds = Dataset()
    ds.SeriesInstanceUID = "1.2.3"
    assert split_key(ds) == "SeriesInstanceUID=1.2.3"
    ds.StudyInstanceUID = "1.2"
    assert split_key(ds) == "StudyInstanceUID=1.2"
    ds.PatientID = "P7"
    assert split_key(ds) == "PatientID=P7"


def test_every_series_of_a_patient_lands_in_the_same_split(tmp_path):
    ratios = (0.5, 0.25, 0.25)
    for p in range(8):                     # 8 patients, 3 series each
        study = generate_uid()
        for s in range(3):
            ct_file(tmp_path / f"p{p}_s{s}.dcm", f"P{p}", study, generate_uid())
    found = {}
    for split in ("train", "val", "test"):
        try:
            found[split] = {sl.key.split("_")[0] for sl in folder_slices(tmp_path, "ct", split, 32, ratios)}
            counts = [sum(sl.key.startswith(f"{p}_") for sl in folder_slices(tmp_path, "ct", split, 32, ratios))
                      for p in found[split]]
            assert set(counts) == {3}, counts          # all three series of each patient
        except ValueError as e:
            assert "split by patient" in str(e)
            found[split] = set()
    patients = [p for split in found.values() for p in split]
    assert sorted(patients) == [f"p{i}" for i in range(8)]   # each patient in exactly one split
    assert len(found["train"]) >= 1
