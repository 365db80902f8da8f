"""What ``ingest`` decides before any case runs (no Ray cluster): the store's preparation
settings, and what its report may hold."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from raylung.config import ConfigError, dump_config, load_config
from raylung.ingest.case import prepare_case
from raylung.ingest.run import ingest
from raylung.ingest.sources import CaseSource
from raylung.phantom import make_case
from raylung.store.case_store import CaseStore


def _table(tmp_path, case_ids: list[str]) -> str:
    """A cases table whose rows all fail before a case runs (ids refused or repeated)."""
    pd.DataFrame({"case_id": case_ids, "image": "ct.nii.gz", "domain": "healthy"}).to_csv(
        tmp_path / "cases.csv", index=False)
    return str(tmp_path / "cases.csv")


def test_a_store_holding_cases_refuses_other_preparation_settings(tmp_path, image_writer):
    """Its runs would prepare every scan as its config file says, unlike some of its cases."""
    ingested = load_config(None, ["ingest.spacing_mm=[2,2,2]", "ingest.chunks=[8,8,8]"])
    phantom = make_case(seed=0, index=0, pathological=False, size=64, slices=(16, 16))
    image = image_writer(tmp_path / "c1.nii.gz", phantom.image, phantom.spacing)
    case = prepare_case(CaseSource("c1", str(image), None, None, "healthy"), ingested.ingest)
    store = CaseStore(str(tmp_path / "store"))
    store.create()
    store.write_case("c1", case.arrays, case.attrs, {"source_hash": "h"}, (8, 8, 8), 3)
    store.write_bytes("raylung_config.yaml", dump_config(ingested).encode())
    src = _table(tmp_path, ["dup", "dup"])
    with pytest.raises(ConfigError, match=rf"^ingest.spacing_mm=\[1.0, 1.0, 2.0\]: the store "
                                          rf"{store.url} holds cases ingested with \[2.0, 2.0, "
                                          r"2.0\]; ingest into a new store$"):
        ingest(src, store.url, load_config(), progress=False)
    ingest(src, store.url, load_config(None, ["ingest.spacing_mm=[2,2,2]"]), progress=False)
    store.remove_case("c1")  # with no case left, any settings
    ingest(src, store.url, load_config(), progress=False)
    saved = yaml.safe_load(store.read_bytes("raylung_config.yaml"))["ingest"]
    assert saved["spacing_mm"] == [1.0, 1.0, 2.0]


def test_the_report_and_its_lines_hold_no_url_password(tmp_path, capsys):
    url = str(tmp_path / "store")
    result = ingest(_table(tmp_path, ["https://me:pw@host/x"]), url, load_config(),
                    progress=False)
    assert not result.ok
    report = (tmp_path / "store" / "ingest_report.csv").read_text()
    err = capsys.readouterr().err
    assert ":pw@" not in report and ":pw@" not in err
    assert "https://me:<redacted>@host/x" in report and "https://me:<redacted>@host/x" in err
