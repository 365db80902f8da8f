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

A password may hold ``@`` and ``/`` (it ends at the first ``@`` after which the host holds no
other); a path's ``@`` is no password:

    >>> redacted("https://me:p@ss@mlflow:5000/x@y and s3://bucket/a@b")
    'https://me:<redacted>@mlflow:5000/x@y and s3://bucket/a@b'
    >>> redacted("s3://AKIA1:wJa/K7+x@bucket/a@b https://me:a/b@c@host/x")
    's3://AKIA1:<redacted>@bucket/a@b https://me:<redacted>@host/x'
    >>> redacted('Invalid bucket name "me:pw@bucket": Bucket name must match')
    'Invalid bucket name "me:<redacted>@bucket": Bucket name must match'

An http(s) URL's user name without a password is a token (``https://TOKEN@github.com``, as
git and GitHub take it); the user names of other schemes (``ssh://git@host``,
``sftp://me@host``) and ``git@github.com:`` are names and stay:

    >>> redacted("https://ghp_x@github.com/o/r.git ssh://git@github.com/o/r git@github.com:o/r")
    'https://<redacted>@github.com/o/r.git ssh://git@github.com/o/r git@github.com:o/r'
    >>> restored("https://<redacted>@github.com/o/r.git")
    'https://github.com/o/r.git'

An option under a secret's name is redacted whole, a dict or list too (adlfs'
``connection_string``, HTTP ``headers`` with an Authorization, an ``auth`` pair):

    >>> redacted({"storage_options": {"headers": {"Authorization": "Bearer t"},
    ...                               "auth": ["me", "pw"], "block_size": 1024}})
    {'storage_options': {'headers': '<redacted>', 'auth': '<redacted>', 'block_size': 1024}}
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
# Option names that hold credentials in fsspec/s3fs/gcsfs/adlfs/HTTP (key, secret,
# aws_session_token, token, password, account_key, credentials, connection_string, headers,
# auth, ...).
SECRET_NAME = re.compile(r"key|secret|token|passw|credential|session|connection_string|"
                         r"headers|auth", re.IGNORECASE)
# the password ends at the first @ whose host (up to the path) holds no other @; botocore
# quotes a bucket name without its scheme
URL_PASSWORD = re.compile(r"((?:://|\")[^/@\s:\"]*):[^\s\"]*?@(?=[^@/\s\"]*(?:[/\s\"]|$))")
URL_TOKEN = re.compile(r"(https?://)[^/@\s:]+@")  # an http(s) user name without a password
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
        return URL_TOKEN.sub(rf"\1{REDACTED}@", URL_PASSWORD.sub(rf"\1:{REDACTED}@", tree))
    return tree


def restored(tree: Any) -> Any:
    """A written tree made loadable: redacted values dropped, redacted URL passwords removed."""
    if isinstance(tree, dict):
        return {key: restored(value) for key, value in tree.items() if value != REDACTED}
    if isinstance(tree, list):
        return [restored(value) for value in tree]
    if isinstance(tree, str):
        return tree.replace(f":{REDACTED}@", "@").replace(f"//{REDACTED}@", "//")
    return tree


def _is_secret(name: str, value: Any) -> bool:
    """Whether an option holds a credential: a text, dict or list under a secret's name (not a
    flag such as ``anon: false`` or an unset ``token: null``)."""
    return isinstance(value, (str, dict, list)) and bool(SECRET_NAME.search(name))
