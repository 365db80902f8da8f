"""No credential in storage options or URLs reaches a written config (raylung/secrets.py)."""

from __future__ import annotations

import pytest

from raylung.secrets import redacted, restored


@pytest.mark.parametrize("options", [
    {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=SECRET1"},
    {"headers": {"Authorization": "Bearer SECRET1", "User-Agent": "raylung"}},
    {"auth": ["me", "SECRET1"]},
], ids=["adlfs", "http-headers", "auth-pair"])
def test_a_credential_option_is_redacted_whole(options):
    written = redacted({"storage_options": {**options, "anon": False}})
    assert "SECRET1" not in str(written)
    assert restored(written) == {"storage_options": {"anon": False}}


@pytest.mark.parametrize("url", ["https://me:SECRET/1@host:5000/x",
                                 "s3://AKIA1:SECRET/1+x@bucket/a@b",
                                 "https://SECRET1@github.com/o/r.git"])
def test_a_url_credential_is_redacted(url):
    assert "SECRET" not in redacted(url)
