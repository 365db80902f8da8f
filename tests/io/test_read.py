"""Reading volumes and masks: every unfit file is an InputError naming it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from raylung.errors import InputError
from raylung.io.read import read_mask, read_mask_on, read_volume


def test_formats_read_the_same_voxels(tmp_path, image_writer):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    for suffix in (".nii.gz", ".mha", ".nrrd"):
        path = image_writer(tmp_path / f"ct{suffix}", array, spacing=(0.7, 0.7, 2.5))
        image = read_volume(path)
        assert np.array_equal(sitk.GetArrayFromImage(image), array)
        assert np.allclose(image.GetSpacing(), (0.7, 0.7, 2.5))


def test_dicom_series_folder_reads_as_volume(tmp_path):
    import pydicom.data

    src = pydicom.data.get_testdata_file("CT_small.dcm")
    shutil.copy(src, tmp_path / "slice.dcm")
    image = read_volume(tmp_path)
    assert image.GetSize() == (128, 128, 1)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: file not found"):
        read_volume(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name, words", [("ct.nii.gz", "truncated or corrupt compressed data"),
                                         ("ct.nii", "truncated NIfTI: 1352 of 2400 bytes")])
def test_truncated_nifti(tmp_path, image_writer, name, words):
    """SimpleITK zero-fills a truncated NIfTI silently; raylung must refuse it."""
    path = image_writer(tmp_path / name, np.ones((8, 8, 16), np.int16))
    data = path.read_bytes()
    path.write_bytes(data[:1352] if name == "ct.nii" else data[:-10])
    with pytest.raises(InputError, match=rf"{name}: {words}"):
        read_volume(path)


def test_truncated_metaimage(tmp_path, image_writer):
    """ITK's reason is a stale "No such file or directory"; the file is there."""
    path = image_writer(tmp_path / "ct.mha", np.ones((8, 8, 16), np.int16))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"ct.mha: unreadable image \(truncated or corrupt "
                                         r"file\)$"):
        read_volume(path)


@pytest.mark.parametrize("name", ["CT.NII.GZ", "ct.Nii"])
def test_upper_case_nifti_names_get_the_nifti_checks(tmp_path, image_writer, name):
    """SimpleITK zero-fills a truncated NIfTI whatever its name's case."""
    path = image_writer(tmp_path / "ct.nii.gz" if name.endswith("GZ") else tmp_path / "ct.nii",
                        np.ones((8, 8, 16), np.int16))
    data = path.read_bytes()
    path.unlink()
    (tmp_path / name).write_bytes(data[:-10] if name.endswith("GZ") else data[:1352])
    with pytest.raises(InputError, match=rf"{name}: truncated"):
        read_volume(tmp_path / name)


def test_analyze_pairs_are_refused(tmp_path, image_writer):
    """A .hdr/.img pair escapes the NIfTI checks; one line says to convert it."""
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.int16)), str(tmp_path / "a.hdr"))
    with pytest.raises(InputError, match=r"a.hdr: Analyze or NIfTI pairs \(.hdr/.img\) are not "
                                         r"read"):
        read_volume(tmp_path / "a.hdr")


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path, dicom_writer):
    """ITK only warns and spreads the slices evenly, shifting every one after the gap."""
    image = sitk.GetImageFromArray(np.zeros((10, 16, 16), np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    folder = dicom_writer(image, tmp_path / "series")
    assert read_volume(folder).GetSize() == (16, 16, 10)
    (folder / "slice_0004.dcm").unlink()
    with pytest.raises(InputError, match=r"series: slices are unevenly spaced \(2.50 to 5.00 mm "
                                         r"apart\): a missing or duplicate slice\?$"):
        read_volume(folder)


def test_zero_byte_file(tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match=r"ct.nii.gz: file is empty"):
        read_volume(tmp_path / "ct.nii.gz")


def test_garbage_dicom_folder(tmp_path):
    (tmp_path / "dcm").mkdir()
    (tmp_path / "dcm" / "a.dcm").write_bytes(b"not a dicom file" * 10)
    with pytest.raises(InputError, match=r"dcm: folder holds no readable DICOM series"):
        read_volume(tmp_path / "dcm")


@pytest.mark.parametrize("name", ["slice.png", "slice.nii.gz"])
def test_2d_image_rejected(tmp_path, image_writer, name):
    path = image_writer(tmp_path / name, np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError, match=rf"{name}: image is 2-D, expected a 3-D volume"):
        read_volume(path)


def test_vector_pixels_rejected(tmp_path):
    image = sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    with pytest.raises(InputError, match=r"rgb.mha: pixel type vector of 32-bit float is not a scalar"):
        read_volume(tmp_path / "rgb.mha")


def test_float_mask_with_whole_numbers_is_a_label_map(tmp_path, image_writer):
    path = image_writer(tmp_path / "m.nii.gz", np.array([[[0, 1], [2, 0]]], np.float32))
    assert sitk.GetArrayFromImage(read_mask(path)).tolist() == [[[0, 1], [2, 0]]]


def test_probability_mask_rejected(tmp_path, image_writer):
    path = image_writer(tmp_path / "m.nii.gz", np.full((2, 2, 2), 0.7, np.float32))
    with pytest.raises(InputError, match="m.nii.gz: mask is not an integer label map"):
        read_mask(path)


def test_a_ct_scan_given_as_a_mask_is_refused(tmp_path, image_writer):
    """evaluate scored a scan given as --pred (volume difference 3529 %) without a word."""
    path = image_writer(tmp_path / "ct.nii.gz", np.full((2, 4, 4), -1024, np.int16))
    with pytest.raises(InputError, match=r"ct.nii.gz: mask has negative labels \(down to "
                                         r"-1024\): a CT scan, not a label map\?$"):
        read_mask(path)


def test_zero_size_volume(tmp_path):
    header = ("ObjectType = Image\nNDims = 3\nDimSize = 10 10 0\nElementType = MET_SHORT\n"
              "ElementSpacing = 1 1 1\nElementDataFile = LOCAL\n")
    (tmp_path / "empty.mha").write_text(header)
    with pytest.raises(InputError, match=r"empty.mha: image has zero size \(10, 10, 0\)"):
        read_volume(tmp_path / "empty.mha")


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.mha"])
def test_nan_and_inf_voxels_rejected(tmp_path, image_writer, name):
    """SimpleITK reads NaN in NIfTI as 0; raylung must still see it."""
    array = np.zeros((6, 7, 8), np.float32)
    array[0, 0, 0], array[5, 6, 7] = np.nan, np.inf
    path = image_writer(tmp_path / name, array)
    with pytest.raises(InputError, match=rf"{name}: image has 2 NaN/inf voxels"):
        read_volume(path)


def test_float64_nifti_without_nan_reads(tmp_path, image_writer):
    path = image_writer(tmp_path / "ct.nii.gz", np.full((6, 7, 8), -500.0))
    assert read_volume(path).GetSize() == (8, 7, 6)


def test_a_mask_whose_header_was_lost_is_refused_however_its_box_overlaps(tmp_path):
    """A label map saved from numpy (origin 0, spacing 1) still touches the scan's box, so
    the overlap check alone resampled it into the wrong place; the same mask reoriented (to
    RAS, other origin and direction, same voxels in space) is fine."""
    image = sitk.GetImageFromArray(np.zeros((40, 64, 64), np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    image.SetOrigin((-22.0, -22.0, 10.0))
    lung = np.zeros((40, 64, 64), np.uint8)
    lung[5:35, 10:54, 8:30] = 1
    mask = sitk.GetImageFromArray(lung)
    mask.CopyInformation(image)
    reoriented = sitk.DICOMOrient(mask, "RAS")
    assert reoriented.GetDirection() != mask.GetDirection()
    sitk.WriteImage(reoriented, str(tmp_path / "ras.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(read_mask_on(tmp_path / "ras.nii.gz", image)),
                          lung)
    sitk.WriteImage(sitk.GetImageFromArray(lung), str(tmp_path / "lost.nii.gz"))
    with pytest.raises(InputError, match=r"lost.nii.gz: only \d+% of the mask's labelled voxels "
                                         r"lie inside its image: its origin, spacing or "
                                         r"direction do not match the image's$"):
        read_mask_on(tmp_path / "lost.nii.gz", image)
