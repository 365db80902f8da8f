"""``raylung synth``: G's change lands on the scan's own grid and nothing else moves; the noise
fields vary in z as they vary in-plane; bad scans and wrong models are one line each."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from raylung.cli import main
from raylung.config import load_config
from raylung.networks import build_generator, build_segmenter, export_generator, export_model
from raylung.phantom.case import make_case
from raylung.preprocess.thorax_crop import estimated_lung_box
from raylung.segment.scan import prepare_scan
from raylung.synth.scan import Synthesiser, plane_noise, scan_seed

RAYLUNG = str(Path(sys.executable).parent / "raylung")
CHANGE = 0.05  # in normalised units: 51.2 HU with the default hu_norm (-1024, 1024)
MODES = {"slice2d": ["data.slice_size=[32,32]"],
         "patch3d": ["data.mode=patch3d", "data.patch_size=[16,16,16]"]}


def _generator(path: Path, mode: str, change: float = 0.0, noise: int = 1,
               *extra: str) -> Path:
    """An exported residual G whose output is clamp(x + change): its last conv has zero
    weights (as a residual G starts) and a bias of atanh(change), under the tanh head."""
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1", f"gan.noise_channels={noise}",
                                *MODES[mode], *extra])
    generator = build_generator(config)
    with torch.no_grad():
        generator.net[-2].bias.fill_(math.atanh(change))
    return export_generator(generator, config, path)


def _noise_dependent(path: Path) -> Path:
    """The exported G at ``path`` with random weights in its last conv: its change now
    depends on its input and its noise."""
    payload = torch.load(path, weights_only=True)
    last = next(k for k in reversed(payload["state_dict"]) if k.endswith("weight"))
    payload["state_dict"][last] = torch.randn_like(payload["state_dict"][last])
    torch.save(payload, path)
    return path


def _oblique_phantom() -> tuple[sitk.Image, np.ndarray]:
    """A healthy phantom thorax on an oblique, anisotropic grid, with its lung mask; its first
    and last slices (no lung) repeat 10 times, so a third of the scan is below or above the
    lungs."""
    case = make_case(seed=3, index=0, pathological=False, size=96, slices=(28, 28))
    pad = [(10, 10), (0, 0), (0, 0)]
    hu, lung = np.pad(case.image, pad, mode="edge"), np.pad(case.lung, pad)
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(case.spacing)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    image.SetOrigin((-40.0, 12.0, 7.5))
    return image, lung.astype(bool)


@pytest.mark.parametrize("mode", MODES)
def test_an_identity_g_gives_back_the_scan_voxel_for_voxel(tmp_path, mode):
    image, _ = _oblique_phantom()
    out = Synthesiser(_generator(tmp_path / "g.pt", mode))(image)
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(out, get)() == getattr(image, get)()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("noise", [0, 1])
def test_the_change_lands_in_the_lungs_in_hu(tmp_path, mode, noise):
    """G adds 51.2 HU everywhere it looks: the lungs gain it on the scan's own grid, and
    nothing outside the slices through the lungs changes."""
    image, lung = _oblique_phantom()
    before = sitk.GetArrayFromImage(image).astype(int)
    model = _generator(tmp_path / "g.pt", mode, CHANGE, noise)
    after = sitk.GetArrayFromImage(Synthesiser(model)(image))
    delta = after - before
    inner = lung & np.roll(lung, 2, 1) & np.roll(lung, -2, 1) & np.roll(lung, 2, 2) \
        & np.roll(lung, -2, 2)  # away from the lung's edge in-plane
    assert np.mean(np.abs(delta[inner] - CHANGE * 1024) <= 1) > 0.95
    changed_slices = np.flatnonzero(np.abs(delta).max(axis=(1, 2)) > 0)
    lung_slices = np.flatnonzero(lung.any(axis=(1, 2)))
    assert changed_slices.min() >= lung_slices.min() - 2
    assert changed_slices.max() <= lung_slices.max() + 2


def test_a_g_trained_at_native_spacing_draws_too(tmp_path):
    """ingest.spacing_mm=null keeps each scan's own spacing; the noise's z scale takes it
    from the scan's grid (it once read the config's null)."""
    image, lung = _oblique_phantom()
    model = _generator(tmp_path / "g.pt", "slice2d", CHANGE, 1, "ingest.spacing_mm=null")
    delta = sitk.GetArrayFromImage(Synthesiser(model)(image)).astype(int) \
        - sitk.GetArrayFromImage(image)
    assert np.median(delta[lung]) == pytest.approx(CHANGE * 1024, abs=1)


@pytest.mark.parametrize("mode", MODES)
def test_the_seed_picks_the_noise_and_the_same_seed_gives_the_same_scan(tmp_path, mode):
    """A G whose last layer is not zero answers its noise: another seed, another scan."""
    image, _ = _oblique_phantom()
    synth = Synthesiser(_noise_dependent(_generator(tmp_path / "g.pt", mode)))
    first, again, other = (sitk.GetArrayFromImage(synth(image, seed)) for seed in (0, 0, 1))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_lungs_end_slices_see_their_real_neighbours_as_context(tmp_path):
    """With data.context_slices, G's change at the lungs' first slice depends on the slice
    below it, as in training, where it was a copy of the first slice itself."""
    model = _noise_dependent(_generator(tmp_path / "g.pt", "slice2d", 0.0, 0,
                                        "data.context_slices=1"))
    synth = Synthesiser(model)
    scan = prepare_scan(_oblique_phantom()[0], synth.config)
    lungs = estimated_lung_box(scan.hu, scan.body)
    assert lungs.z0 > 0
    before = synth.change(scan)[lungs.z0]
    scan.hu[lungs.z0 - 1] += 300  # only the slice below the lungs' range
    after = synth.change(scan)
    assert not np.allclose(after[lungs.z0], before, atol=1e-3)
    assert not after[lungs.z0 - 1].any()  # and nothing is drawn outside the range


def test_noise_fields_vary_in_z_at_the_scale_they_vary_in_plane_and_stay_unit_normal():
    fields = plane_noise(400, 1, (64, 64), 10.0, torch.Generator().manual_seed(0))
    at_cells, between = fields[::10].var().item(), fields[5::10].var().item()
    assert between == pytest.approx(at_cells, rel=0.15)  # a linear blend would halve it
    flat = fields.reshape(400, -1)
    neighbours = torch.corrcoef(torch.stack([flat[200], flat[201]]))[0, 1]
    apart = torch.corrcoef(torch.stack([flat[200], flat[230]]))[0, 1]
    assert neighbours > 0.95 and abs(apart) < 0.5
    same = plane_noise(400, 1, (64, 64), 10.0, torch.Generator().manual_seed(0))
    assert torch.equal(fields, same)


@pytest.mark.slow
def test_a_batch_runs_on_ray_as_the_api_does_and_names_a_bad_scan(tmp_path, ray_cluster):
    """A folder is one Ray Data job (readers, a G actor, writers): each scan comes out as
    the in-process API makes it with the scan's own seed; a scan without lungs is one line."""
    scans = tmp_path / "scans"
    scans.mkdir()
    image, _ = _oblique_phantom()
    sitk.WriteImage(image, str(scans / "good.nii.gz"))
    solid = sitk.GetImageFromArray(np.full((16, 48, 48), 40, np.int16))  # no air, no bone
    sitk.WriteImage(solid, str(scans / "solid.nii.gz"))
    model = _noise_dependent(_generator(tmp_path / "g.pt", "slice2d"))
    out = subprocess.run([RAYLUNG, "synth", str(scans), "--model", str(model), "--seed", "3",
                          "--out", str(tmp_path / "sick")],
                         capture_output=True, encoding="utf-8", timeout=300)
    assert out.returncode == 1
    assert f"raylung synth: {scans / 'solid.nii.gz'}: " in out.stderr
    assert "Traceback" not in out.stderr
    assert "synth: 1 of 2 scans" in out.stdout
    assert sorted(p.name for p in (tmp_path / "sick").iterdir()) == [".raylung_batch.json",
                                                                 "good.nii.gz"]
    written, source = (sitk.ReadImage(str(p)) for p in (tmp_path / "sick" / "good.nii.gz",
                                                         scans / "good.nii.gz"))
    expected = Synthesiser(model)(source, scan_seed(3, "good"))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(expected))
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(written, get)() == getattr(source, get)()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_batch_on_cuda_without_a_gpu_is_one_line_per_scan(tmp_path, ray_cluster):
    """The G actors cannot load on a GPU that is not there: each scan fails in one line,
    not in Ray's traceback of a dead actor."""
    scans = tmp_path / "scans"
    scans.mkdir()
    image, _ = _oblique_phantom()
    for name in ("a", "b"):
        sitk.WriteImage(image, str(scans / f"{name}.nii.gz"))
    out = subprocess.run([RAYLUNG, "synth", str(scans), "--model",
                          str(_generator(tmp_path / "g.pt", "slice2d")), "--device", "cuda",
                          "--out", str(tmp_path / "sick")],
                         capture_output=True, encoding="utf-8", timeout=300)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("raylung synth:")]
    assert lines == ["raylung synth: --device cuda: no CUDA device is visible here"] * 2
    assert "Traceback" not in out.stderr
    assert "synth: 0 of 2 scans" in out.stdout


def test_one_scan_runs_in_this_process_with_its_seed(tmp_path):
    image, _ = _oblique_phantom()
    sitk.WriteImage(image, str(tmp_path / "scan.nii.gz"))
    model = _noise_dependent(_generator(tmp_path / "g.pt", "slice2d"))
    status = main(["synth", str(tmp_path / "scan.nii.gz"), "--model", str(model),
                   "--out", str(tmp_path / "sick.nii.gz")])
    assert status == 0
    source = sitk.ReadImage(str(tmp_path / "scan.nii.gz"))
    expected = Synthesiser(model)(source, scan_seed(0, "scan"))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sick.nii.gz"))),
                          sitk.GetArrayFromImage(expected))


def test_cli_refuses_a_segmenter_as_the_model(tmp_path):
    image, _ = _oblique_phantom()
    sitk.WriteImage(image, str(tmp_path / "scan.nii.gz"))
    config = load_config(None, ["seg.channels=[4,8]", "seg.strides=[2]"])
    model = export_model(build_segmenter(config), config, tmp_path / "segmenter.pt", "segmenter")
    out = subprocess.run([RAYLUNG, "synth", str(tmp_path / "scan.nii.gz"), "--model", str(model),
                          "--out", str(tmp_path / "sick.nii.gz")],
                         capture_output=True, encoding="utf-8", timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"raylung synth: error: {model}: not a raylung generator_h2p "
                                  "export (found segmenter)")
    assert not (tmp_path / "sick.nii.gz").exists()
