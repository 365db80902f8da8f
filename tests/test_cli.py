"""The installed ``raylung`` command: help, phantom, errors in one line, the demo end to end."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk

from raylung.cli import main
from raylung.config import load_config

RAYLUNG = str(Path(sys.executable).parent / "raylung")


@pytest.mark.parametrize("command", [[], ["phantom"], ["ingest"], ["info"], ["stream"],
                                     ["train-gan"], ["train-seg"], ["tune"], ["segment"],
                                     ["synth"], ["evaluate"], ["demo"]])
def test_help(command):
    out = subprocess.run([RAYLUNG, *command, "--help"], capture_output=True, encoding="utf-8")
    assert out.returncode == 0
    assert "usage: raylung" in out.stdout


def test_phantom_writes_cases_and_resolved_config(tmp_path, capsys):
    status = main(["phantom", str(tmp_path / "p"), "--cases", "3", "--seed", "4",
                   "phantom.size=64", "phantom.slices=[10,12]"])
    assert status == 0
    table = pd.read_csv(tmp_path / "p" / "cases.csv")
    assert list(table["case_id"]) == ["phantom_0000", "phantom_0001", "phantom_0002"]
    saved = load_config(tmp_path / "p" / "raylung_config.yaml")
    assert (saved.phantom.cases, saved.phantom.seed, saved.phantom.size) == (3, 4, 64)
    assert "wrote 3 cases" in capsys.readouterr().out


def test_bad_override_is_one_line(tmp_path, capsys):
    assert main(["phantom", str(tmp_path), "phantom.cases=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raylung phantom: error: command line: invalid config: phantom.cases")
    assert "\n" not in err


@pytest.mark.parametrize("argv", [["phantom", "OUT", "--cases", "3", "phantom.cases=5"],
                                  ["stream", "STORE", "data.store=OTHER"]])
def test_a_key_set_by_a_flag_and_an_override_is_refused(argv, tmp_path, capsys):
    """phantom --cases 3 phantom.cases=5 wrote 5 cases: the override won without a word."""
    key = argv[-1].split("=")[0]
    assert main([str(tmp_path / a) if a.isupper() else a for a in argv]) == 2
    assert capsys.readouterr().err == (f"raylung {argv[0]}: error: {key}: set both by a flag "
                                       f"and by {key}=...; give one\n")
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize(("flags", "line"), [
    (["--device", "gpu"], "segment: error: --device gpu: not a device raylung runs on (cpu, "
                          "cuda or cuda:N)"),
    (["--batch-size", "0"], ": error: argument --batch-size: 0: must be at least 1"),
    (["--actors", "-2"], ": error: argument --actors: -2: must be at least 1"),
    (["ray.bogus=1"], "segment: error: command line: invalid config: ray.bogus: unknown key "
                      "(ray has: address, num_cpus, max_parallel_cases, verbose)"),
    (["ingest.spacing_mm=[4,4,4]"], "segment: error: ingest.spacing_mm=[4,4,4]: segment takes "
                                    "the model's settings from the model file; only ray.* and "
                                    "storage.* overrides apply")])
def test_bad_flags_of_a_scan_job_are_one_line_before_it_reads_anything(flags, line, tmp_path,
                                                                       capsys):
    """A one-scan job reads no config, but a typo in it still fails (a batch would use it);
    a negative batch size once wrote an uninitialised mask with exit 0."""
    with pytest.raises(SystemExit) if "argument" in line else contextlib.nullcontext():
        assert main(["segment", str(tmp_path / "none.nii.gz"), "--model", "m.pt",
                     "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(line), err


def test_evaluate_takes_no_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--pred", "p", "--ref", "r", "--out", "o", "seg.steps=3"])
    assert capsys.readouterr().err.strip().endswith("error: unrecognized arguments: seg.steps=3")


@pytest.mark.parametrize("command, hint", [("phantom", "rerun the same command"),
                                           ("ingest", "rerun the same command to resume")])
def test_an_interrupt_says_whether_a_rerun_resumes(monkeypatch, capsys, command, hint):
    """Ctrl-C stands in for a real one here (training, tune, ingest: SIGINT in their tests);
    phantom makes every case again, so it does not "resume"."""
    from raylung.cli import data

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(data, f"_run_{command}", interrupted)
    assert main([command, "somewhere", *(["--store", "st"] if command == "ingest" else [])]) == 130
    assert capsys.readouterr().err.strip() == f"raylung {command}: interrupted; {hint}"


def test_a_bare_key_is_refused_with_the_jobs_own_usage(capsys):
    """It printed raylung's usage (COMMAND ...), not the job's (key=value ...)."""
    with pytest.raises(SystemExit):
        main(["train-gan", "gan.steps"])
    usage, error = capsys.readouterr().err.strip().splitlines()[-2:]
    assert usage.startswith("usage: raylung train-gan") and "[key=value ...]" in usage
    assert error == ("raylung train-gan: error: unrecognized arguments: gan.steps (overrides are "
                     "key=value)")


@pytest.mark.parametrize("flag", ["--rim-mm", "--tolerance-mm"])
def test_evaluate_refuses_bands_of_no_width(flag, capsys):
    """A rim band of 0 mm is empty, and Dice of two empty sets scored it 1."""
    with pytest.raises(SystemExit):
        main(["evaluate", "--pred", "p", "--ref", "r", "--out", "o", flag, "0"])
    assert capsys.readouterr().err.strip().endswith(f"error: argument {flag}: 0: must be above 0")


@pytest.mark.parametrize("argv", [["evaluate", "--pred", "p", "--ref", "r", "--out", "o",
                                   "--tolerance-mm", "nan"],
                                  ["segment", "s", "--model", "m", "--out", "o",
                                   "--actor-cpus", "inf"]])
def test_numbers_must_be_finite(argv, capsys):
    """NaN passed every bound (a NaN tolerance scored identical masks NSD 0)."""
    with pytest.raises(SystemExit):
        main(argv)
    assert capsys.readouterr().err.strip().endswith(f"{argv[-2]}: {argv[-1]}: must be a finite "
                                                    "number")


def test_config_numbers_must_be_finite(capsys):
    """NaN passed the config's bounds: spacing reached SimpleITK, fractions were written out."""
    assert main(["phantom", "p", "--cases", "1", "ingest.spacing_mm=[nan,1,1]"]) == 2
    assert capsys.readouterr().err.strip().endswith("ingest.spacing_mm.0: Input should be a "
                                                    "finite number")


def test_what_the_file_system_refuses_is_one_line(tmp_path, capsys):
    """A folder given as a config file, an output under a file: one line, no traceback."""
    (tmp_path / "file").write_text("")
    assert main(["phantom", str(tmp_path / "file" / "out"), "--cases", "1"]) == 2
    assert capsys.readouterr().err == (f"raylung phantom: error: {tmp_path / 'file' / 'out'}: "
                                       "Not a directory\n")
    assert main(["phantom", str(tmp_path / "out"), "--config", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"raylung phantom: error: {tmp_path}: cannot read "
                                       "(Is a directory)\n")


def test_stream_on_a_missing_store_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["stream", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"raylung stream: error: {tmp_path / 'none'}/manifest.parquet: not found "
        "(run `raylung ingest` first)")
    assert not (tmp_path / "out").exists()


def test_info_on_missing_store_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"raylung info: error: {tmp_path / 'none'}/manifest.parquet: not found "
                   "(run `raylung ingest` first)")


@pytest.mark.parametrize("argv, line", [
    (["train-gan", "data.store=NONE"], "train-gan: error: NONE/manifest.parquet: not found "
                                       "(run `raylung ingest` first)"),
    (["train-seg", "data.store=NONE"], "train-seg: error: NONE/manifest.parquet: not found "
                                       "(run `raylung ingest` first)"),
    (["tune", "--space", str(Path(__file__).parents[1] / "tune_spaces" / "full.yaml")],
     "tune: error: data.store is not set")])
def test_a_training_job_without_its_store_is_one_line_before_ray_starts(argv, line, tmp_path,
                                                                        capsys):
    """No Ray, no run folder: the store is checked first."""
    runs = tmp_path / "runs"
    argv = [a.replace("NONE", str(tmp_path / "none")) for a in argv]
    assert main([*argv, f"run.storage_path={runs}"]) == 2
    assert capsys.readouterr().err.startswith(f"raylung {line}".replace("NONE",
                                                                       str(tmp_path / "none")))
    assert not runs.exists()


def test_object_storage_refusing_is_one_line_without_the_password(capsys, monkeypatch):
    """botocore refuses a bucket name holding credentials (s3fs takes them as options, not in
    the URL) and quotes it; its traceback would show the password."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["info", "s3://me:hunter2@bucket/store"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raylung info: error: object storage refused: ParamValidationError: "
                          'Invalid bucket name "me:<redacted>@bucket"')
    assert "hunter2" not in err and len(err.splitlines()) == 1


def test_a_url_without_its_file_system_installed_is_one_line(capsys):
    """fsspec raises ImportError for a protocol whose package is missing (gcsfs here)."""
    assert main(["info", "gcs://bucket/store"]) == 2
    assert capsys.readouterr().err == ("raylung info: error: no file system for this URL: "
                                       "Please install gcsfs to access Google Storage\n")


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The demo as a new user runs it: into the default ``demo_out`` of the folder it runs in
    (relative paths, which Ray Train's workers, in folders of their own, must still find), on
    a Ray instance of its own (the session's shared cluster has started many worker processes
    by now, and Ray warns of them to every driver)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    out = subprocess.run(
        [RAYLUNG, "demo", "phantom.cases=8", "phantom.size=96",
         "phantom.slices=[16,20]", "data.slice_size=[32,32]", "gan.width=4", "gan.n_blocks=1",
         "gan.disc_width=4", "gan.disc_layers=2", "gan.steps=2", "gan.decay_start=1",
         "gan.checkpoint_every=2", "data.batch_size=4", "data.samples_per_epoch=8",
         "seg.channels=[4,8]", "seg.strides=[2]", "seg.steps=2", "seg.decay_start=1"],
        capture_output=True, encoding="utf-8", timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "ingest: 8 written, 0 unchanged, 0 failed" in out.stdout
    assert "cases            8 (" in out.stdout
    assert "samples_per_s" in out.stdout
    assert "train-gan: step 2 -> generator" in out.stdout
    assert "train-seg: best step 2" in out.stdout
    assert (tmp_path / "demo_out" / "generator_h2p.pt").exists()
    for name in ("raylung_config.yaml", "phantoms/cases.csv", "store/manifest.parquet",
                 "store/raylung_config.yaml", "stream_slice2d.png", "synth.png"):
        assert (tmp_path / "demo_out" / name).exists(), name
    cases = pd.read_csv(tmp_path / "demo_out" / "phantoms" / "cases.csv")
    first = cases[cases["domain"] == "healthy"].iloc[0]
    healthy = sitk.ReadImage(str(tmp_path / "demo_out" / "phantoms" / first.image))
    synthetic = sitk.ReadImage(str(tmp_path / "demo_out" / "synth" / f"{first.case_id}.nii.gz"))
    assert synthetic.GetSize() == healthy.GetSize()  # G's disease in the scan, on its grid
    _assert_quiet_console(out.stdout, out.stderr, tmp_path)


# What Ray itself prints: its log records, worker prefixes, its C++ core, report dumps.
RAY_LINE = re.compile(r"^\S* ?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|DEBUG) |"
                      r"\((\w+ )?pid=\d+|core_worker\.cc|\(raylet\)|TrainingReport\(|"
                      r"Execution plan of Dataset|Setting up process group")


def _assert_quiet_console(stdout: str, stderr: str, cwd: Path) -> None:
    """The demo's console at default verbosity: each stage and progress line once, nothing
    from Ray's internals, the closing summary with the scores and the pictures (paths from
    ``cwd``)."""
    lines = stdout.splitlines() + stderr.splitlines()
    assert not [line for line in lines if RAY_LINE.search(line)], "Ray's own lines shown"
    progress = [line for line in lines if re.match(r"demo_(gan|seg)  step \d+/\d+  ", line)]
    assert {line.split("  ")[0] + " " + line.split("  ")[1] for line in progress} == \
        {"demo_gan step 2/2", "demo_seg step 2/2"}
    assert len(progress) == 2, progress  # each once
    assert all(line.endswith(" left") and " steps/s " in line for line in progress)
    assert [line[:5] for line in lines if re.match(r"\[\d/8\] ", line)] == \
        [f"[{k}/8]" for k in range(1, 9)]
    summary = stdout[stdout.index("raylung demo: done in"):]
    for part in ("phantoms", "U-Net with GAN augmentation", "test split: segment + evaluate",
                 "pathological val  dice", "pathological test cases (1), whole scans",
                 "pictures:", "stream_slice2d.png", "gan_validation.png", "synth.png",
                 "seg_validation.png", "test_report.png"):
        assert part in summary, part
    pictures = summary.split("pictures:\n")[1].split()
    assert pictures and all((cwd / picture).exists() for picture in pictures), pictures
    # tqdm, not a terminal here, writes a line per update: at most one per case or scan (a
    # loaded machine writes more of them: 90 lines in all once), never one per step
    assert len(lines) < 120, "\n".join(lines)


@pytest.mark.usefixtures("ray_cluster")
def test_stream_prints_throughput_and_saves_grid(phantom_store, tmp_path, capsys):
    laptop = Path(__file__).resolve().parents[1] / "cluster" / "laptop.yaml"
    status = main(["stream", phantom_store.url, "--mode", "patch3d", "--batches", "3",
                   "--out", str(tmp_path), "--config", str(laptop), "data.patch_size=[8,24,24]",
                   "data.batch_size=2", "data.split_fractions=[1,0,0]"])
    out = capsys.readouterr().out
    assert status == 0
    assert "samples          6" in out and "samples_per_s" in out
    assert (tmp_path / "stream_patch3d.png").stat().st_size > 1000
    saved = load_config(tmp_path / "raylung_config.yaml")
    assert saved.data.mode == "patch3d" and saved.data.reader_cpus == 0.5


@pytest.mark.parametrize(("fraction", "sick"), [(0.25, 1), (1.0, 4)])
def test_phantom_pathological_fraction_sets_the_share(tmp_path, fraction, sick):
    out = tmp_path / "p"
    assert main(["phantom", str(out), "--cases", "4", "--pathological-fraction", str(fraction),
                 "phantom.size=64", "phantom.slices=[8,8]"]) == 0
    table = pd.read_csv(out / "cases.csv", keep_default_na=False)
    assert (table["domain"] == "pathological").sum() == sick
    assert sorted(p.parent.name for p in out.glob("*/lesion.nii.gz")) == sorted(
        table.loc[table["domain"] == "pathological", "case_id"])
    assert load_config(out / "raylung_config.yaml").phantom.pathological_fraction == fraction


def test_info_prints_the_stores_numbers(phantom_store, capsys):
    import zarr

    assert main(["info", phantom_store.url]) == 0
    out = capsys.readouterr().out
    cases = Path(phantom_store.url) / "cases"
    disk = sum(p.stat().st_size for p in cases.glob("*/**/*") if p.is_file())
    groups = [zarr.open_group(str(case), mode="r") for case in cases.iterdir() if case.is_dir()]
    raw = sum(a.nbytes for group in groups for _, a in group.arrays())
    groups = [group.attrs["raylung"] for group in groups]
    domains = pd.Series([g["domain"] for g in groups]).value_counts()
    assert (domains["healthy"], domains["pathological"]) == (2, 2)
    assert sum(g["labelled"] for g in groups) == 4
    assert "cases            4 (2 healthy, 2 pathological), 4 labelled\n" in out
    assert "spacing x,y,z    median 1.00 x 1.00 x 2.00 mm\n" in out
    assert (f"disk             {disk / 2**20:.1f} MiB (raw {raw / 2**20:.1f} MiB, "
            f"compression {raw / disk:.1f}x)\n") in out
    assert raw / disk > 1.5


def test_evaluate_scores_folders_and_prints_the_table(tmp_path, image_writer, capsys):
    import numpy as np

    ref = np.zeros((8, 20, 20), np.uint8)
    ref[2:6, 4:16, 4:16] = 1
    pred = np.roll(ref, 1, axis=2)
    for case in ("a", "b"):
        image_writer(tmp_path / "ref" / f"{case}.nii.gz", ref, spacing=(0.8, 0.8, 2.5))
        image_writer(tmp_path / "pred" / f"{case}.nii.gz", pred, spacing=(0.8, 0.8, 2.5))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "evaluate: 2 cases ->" in out and "dice" in out and "hd95_mm" in out
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "with_ct"), "--images", str(tmp_path / "ref")]) == 0
    assert (tmp_path / "with_ct" / "report.png").stat().st_size > 1000
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "eval"), "--images", str(tmp_path / "no_ct")]) == 2
    assert "no_ct: not found" in capsys.readouterr().err
    per_case = pd.read_csv(tmp_path / "eval" / "per_case.csv")
    assert per_case["dice"].tolist() == pytest.approx([2 * 11 * 12 * 4 / (2 * 12 * 12 * 4)] * 2)
    assert per_case["hd95_mm"].tolist() == pytest.approx([0.8, 0.8])
    image_writer(tmp_path / "pred" / "b.nii.gz", pred, spacing=(0.8, 0.8, 2.0))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "eval")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("raylung evaluate: error: ")
    assert "b.nii.gz: grid differs from the reference" in errors[0]
