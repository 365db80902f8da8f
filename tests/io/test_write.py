"""Atomic writes: a reader sees the old file or the whole new one, never half of one, and a
failed write leaves nothing behind."""

from __future__ import annotations

import pytest

from raylung.io.write import write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old")

    def half(tmp):
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
    assert target.read_text() == "old"


def test_the_writer_sees_the_suffix_and_the_folder_is_made(tmp_path):
    seen = []
    path = write_atomic(tmp_path / "new" / "mask.nii.gz",
                        lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"x")))
    assert seen[0].endswith(".nii.gz") and seen[0] != "mask.nii.gz"
    assert [p.name for p in path.parent.iterdir()] == ["mask.nii.gz"]
    assert write_atomic(tmp_path / "sweep", lambda tmp: tmp.write_text("y")).read_text() == "y"
