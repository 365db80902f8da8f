"""Secrets raylung never writes: keys in storage options and passwords in URLs.

Every config raylung writes (run folders, checkpoints, exported models, the store, sweep
files) is :func:`redacted` first; the written file keeps ``<redacted>`` where a value was taken
out. Read back, :func:`restored` drops those values, so the credentials come from the
environment or the cloud's default chain (IAM role, service account), as on the run that
wrote them.

    >>> tree = {"storage": {"storage_options": {"key": "AKIA1", "anon": False}},
    ...         "logging": {"mlflow_tracking_uri": "https://me:pw@mlflow:5000"}}
    >>> redacted(tree)["storage"], redacted(tree)["logging"]
    ({'storage_options': {'key': '<redacted>', 'anon': False}}, {'mlflow_tracking_uri': 'https://me:<redacted>@mlflow:5000'})
    >>> restored(redacted(tree))["storage"], restored(redacted(tree))["logging"]
    ({'storage_options': {'anon': False}}, {'mlflow_tracking_uri': 'https://me@mlflow:5000'})

A password may hold ``@`` (the host follows the last one); a path's ``@`` is no password:

    >>> redacted("https://me:p@ss@mlflow:5000/x@y and s3://bucket/a@b")
    'https://me:<redacted>@mlflow:5000/x@y and s3://bucket/a@b'
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
# Option names that hold credentials in fsspec/s3fs/gcsfs/adlfs (key, secret,
# aws_session_token, token, password, account_key, credentials, ...).
SECRET_NAME = re.compile(r"key|secret|token|passw|credential|session", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(://[^/@\s:]*):([^/\s]+)@")  # the password ends at the last @
OPTIONS = "storage_options"


def redacted(tree: Any, secret_names: bool = False) -> Any:
    """A copy of a config tree with every secret replaced by ``REDACTED``: values under
    ``storage_options`` whose name looks like a credential, and the password of any URL."""
    if isinstance(tree, dict):
        return {key: REDACTED if secret_names and _is_secret(key, value)
                else redacted(value, secret_names or key == OPTIONS)
                for key, value in tree.items()}
    if isinstance(tree, list):
        return [redacted(value, secret_names) for value in tree]
    if isinstance(tree, str):
        return URL_PASSWORD.sub(rf"\1:{REDACTED}@", tree)
    return tree


def restored(tree: Any) -> Any:
    """A written tree made loadable: redacted values dropped, redacted URL passwords removed."""
    if isinstance(tree, dict):
        return {key: restored(value) for key, value in tree.items() if value != REDACTED}
    if isinstance(tree, list):
        return [restored(value) for value in tree]
    if isinstance(tree, str):
        return tree.replace(f":{REDACTED}@", "@")
    return tree


def _is_secret(name: str, value: Any) -> bool:
    return isinstance(value, str) and bool(SECRET_NAME.search(name))
