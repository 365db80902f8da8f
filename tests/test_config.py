"""The config tree: YAML + key=value overrides, validation in one line, round trip."""

from __future__ import annotations

import pytest

from raylung.config import ConfigError, load_config, read_yaml_tree, save_config


def test_overrides_parse_yaml_values():
    config = load_config(None, ["ingest.spacing_mm=[0.8,0.8,1.5]", "phantom.cases=3",
                                "ingest.lung_labels=[10,11]"])
    assert config.ingest.spacing_mm == (0.8, 0.8, 1.5)
    assert config.phantom.cases == 3
    assert config.ingest.lung_labels == [10, 11]


def test_exponents_are_numbers_and_text_fields_keep_the_text(tmp_path):
    """YAML 1.1 reads 1e3 as a string, which an int field refused ("unable to parse string")."""
    path = tmp_path / "job.yaml"
    path.write_text("gan:\n  steps: 1e3\n  lr: 2e-4\n")
    config = load_config(path, ["seg.steps=1.5E3", "run.name=1e3", "data.store=2024"])
    assert (config.gan.steps, config.gan.lr, config.seg.steps) == (1000, 2e-4, 1500)
    assert config.run.name == "1e3" and config.data.store.endswith("/2024")


def test_a_section_given_a_value_is_refused_without_showing_it():
    """The value may be credentials typed in the wrong place."""
    with pytest.raises(ConfigError) as err:
        load_config(None, ["storage.storage_options=key=AKIAXYZ,secret=wJalr"])
    assert "storage.storage_options: is a section" in str(err.value)
    assert "AKIA" not in str(err.value) and "wJalr" not in str(err.value)


def test_a_sections_own_check_names_every_layer_that_set_its_keys(tmp_path):
    first, second = tmp_path / "exp.yaml", tmp_path / "short.yaml"
    first.write_text("gan: {steps: 1500, decay_start: 1500}\n")
    second.write_text("gan: {steps: 1e3}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml \+ .*short.yaml: invalid config: gan: "
                                          r"decay_start 1500 must be <= steps 1000$"):
        load_config([first, second])


def test_a_generator_alone_translates_half_the_samples():
    """At p_synth 0 a given generator was loaded, checked, and translated nothing."""
    assert load_config(None, ["seg.generator=g.pt"]).seg.p_synth == 0.5
    assert load_config(None, ["seg.generator=g.pt", "seg.p_synth=0"]).seg.p_synth == 0.0
    assert load_config(None, []).seg.p_synth == 0.0


def test_local_paths_are_made_absolute_and_urls_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["data.store=demo_out/store", "seg.generator=g/generator_h2p.pt",
                                "data.splits_file=s3://bucket/splits.csv"])
    assert config.data.store == str(tmp_path / "demo_out" / "store")
    assert config.seg.generator == str(tmp_path / "g" / "generator_h2p.pt")
    assert config.data.splits_file == "s3://bucket/splits.csv"
    assert config.run.storage_path == str(tmp_path / "runs")  # the default too
    config.run.storage_path = "elsewhere"
    assert config.run.storage_path == str(tmp_path / "elsewhere")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config(None, ["data.store=~/store"]).data.store == str(tmp_path / "home/store")


def test_file_then_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("phantom:\n  cases: 5\n  seed: 7\n")
    config = load_config(path, ["phantom.seed=9"])
    assert (config.phantom.cases, config.phantom.seed) == (5, 9)


def test_saved_config_reloads_identically(tmp_path):
    config = load_config(None, ["ingest.hu_window=[-1000,2000]", "ingest.spacing_mm=null",
                                "run.name=1e3", "logging.mlflow_experiment=2024-06-01"])
    save_config(config, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == config


@pytest.mark.parametrize("override, message", [
    ("ingest.spacin_mm=[1,1,1]", "command line: invalid config: ingest.spacin_mm: unknown key "
                                 "(ingest has: spacing_mm, hu_window,"),
    ("ingest.hu_window=[100,-100]", "hu_window must be [low, high]"),
    ("data.hu_norm=[0,0]", "hu_norm must be [low, high] with low < high"),
    ("phantom.cases=0", "phantom.cases: Input should be greater than or equal to 1"),
    ("ingest.lung_labels=[0]", "lung_labels must be positive"),
    ("ingest.shards=[64,100,128]", "shards [64, 100, 128] must be positive multiples of chunks"),
    ("nonsense", "expected key=value"),
    ("gan.lambda_diversity=1", "lambda_diversity > 0 needs noise_channels > 0"),
    ("ingest.spacing_mm=[1,2]", "ingest.spacing_mm: needs 3 values, got 2"),  # not "Field required"
    ("data.hu_norm=[1,2,3]", "data.hu_norm: needs 2 values, got 3"),
    ("data.augment=5", "data.augment: is a section: give it keys (key: value) or leave it out, "
                       "not a number"),
])
def test_bad_override_is_one_clear_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_workers_that_could_share_a_gpu_are_refused():
    """Ray packs two 0.5-GPU bundles onto one GPU; one worker, or workers of more than half
    a GPU each, always get their own."""
    gpu = ["scaling.use_gpu=true", "scaling.num_workers=2"]
    with pytest.raises(ConfigError, match="gpus_per_worker 0.5 with 2 workers: two workers "
                                          "could share one GPU"):
        load_config(None, [*gpu, "scaling.gpus_per_worker=0.5"])
    assert load_config(None, [*gpu, "scaling.gpus_per_worker=0.75"]).scaling.num_workers == 2
    assert load_config(None, ["scaling.use_gpu=true", "scaling.gpus_per_worker=0.5"])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("phantom: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    """Plain YAML keeps the last of two keys silently."""
    path = tmp_path / "twice.yaml"
    path.write_text("gan:\n  lr: 0.001\n  steps: 3\n  lr: 0.002\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: not valid YAML \('lr' is given twice in "
                                          r"one mapping, line 4\)$"):
        load_config(path)


def test_merge_keys_may_repeat_a_key_and_an_unhashable_key_is_one_line(tmp_path):
    merged = tmp_path / "merged.yaml"
    merged.write_text("x-base: &base {lr: 0.001, steps: 3}\ngan:\n  <<: *base\n  lr: 0.002\n")
    assert read_yaml_tree(merged)["gan"] == {"lr": 0.002, "steps": 3}  # the last one wins
    odd = tmp_path / "odd.yaml"
    odd.write_text("gan:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(ConfigError, match=r"odd.yaml: not valid YAML \(found unhashable key"):
        load_config(odd)


def test_a_section_left_empty_is_empty(tmp_path):
    """``phantom:`` with its keys commented out was blamed on the command line's overrides."""
    path = tmp_path / "empty.yaml"
    path.write_text("phantom:\n  # cases: 3\n")
    assert load_config(path, ["phantom.cases=2"]).phantom.cases == 2


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
