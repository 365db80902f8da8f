#!/usr/bin/env bash
# Install raylung from the pinned lock files (refresh them with `bash scripts/lock.sh`):
#   bash scripts/setup.sh          ./.venv with raylung and its test tools, resolving nothing;
#                                  a rerun on an existing .venv takes seconds
#   bash scripts/setup.sh --node   a cluster node or image (cluster/aws.yaml, cluster/Dockerfile):
#                                  into the Python that runs Ray there (Ray's image), with the
#                                  extras a cluster needs (s3, tune), held to the lock's pins
# torch comes first (DeepSpeed's build imports it): torch==2.13.0 from pip's configured index
# (the CPU build where pip is set up for it, as in CI; the CUDA build from PyPI on Linux); for
# another CUDA:  TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
case "$*" in
  --node) py="${PYTHON:-python3}" extras="s3,tune" ;;
  "") [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
      py=.venv/bin/python extras="test" ;;
  *) echo "usage: bash scripts/setup.sh [--node]" >&2; exit 2 ;;
esac
# -qq: errors only (pip warns once per package that a configured file:// index lacks)
pip=("$py" -m pip install -qq --disable-pip-version-check)
"${pip[@]}" -r requirements-build.lock  # pip, setuptools, wheel and uv
# torch through pip, which picks the build from pip's configuration as it always has
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  # a CUDA build brings its own nvidia-* dependencies; the lock below re-pins the shared ones
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" --index-url "$TORCH_INDEX_URL"
else
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" -c requirements.lock  # its dependencies as locked
fi

# --no-build-isolation: DeepSpeed (a source distribution) builds against the torch above.
lock_python="$(sed -n 's/^# python: //p' requirements.lock)"
py_version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$extras" = test ] && [ "$py_version" = "$lock_python" ]; then
  # The lock itself goes through uv (measured 2x faster than pip here: parallel downloads,
  # unzips and bytecode compilation). uv does not read pip's configuration, so it is handed
  # pip's package sources (config files and PIP_* variables; later sections win as in pip);
  # with exact pins, unsafe-best-match takes each pin from whichever of them has it, as pip does.
  mapfile -t sources < <("$py" - <<'PY'
import ast, subprocess, sys
listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                        capture_output=True, text=True).stdout.splitlines()
config = {}
for section in ("global.", "install.", ":env:."):
    for key, _, value in (line.partition("=") for line in listed):
        if key.startswith(section):
            config[key.removeprefix(section)] = ast.literal_eval(value)
for key, option in [("index-url", "--default-index"), ("extra-index-url", "--index"),
                    ("find-links", "--find-links")]:
    for value in config.get(key, "").split():
        print(option, value, sep="\n")
PY
  )
  uv=(.venv/bin/uv pip install -q --python "$py" --compile-bytecode
      --index-strategy unsafe-best-match ${sources[@]+"${sources[@]}"})
  # --no-deps: the lock is the whole resolved tree (pip check below catches a stale one)
  "${uv[@]}" --no-deps --no-build-isolation -r requirements.lock -e . || {
    echo "uv failed; installing the lock with pip instead" >&2
    "${pip[@]}" --no-deps --no-build-isolation -r requirements.lock -e .
  }
else
  # A node keeps its image's own packages, and on another Python the lock's markers do not
  # hold: resolve raylung with its extras, held to the lock's pins.
  if [ "$extras" = test ]; then
    echo "requirements.lock is for Python $lock_python: resolving against its pins" >&2
  fi
  "${pip[@]}" --no-build-isolation -c requirements.lock -e ".[$extras]"
fi
if [ "$extras" = test ]; then  # on a node, pip check would also judge the image's packages
  "$py" -m pip check >/dev/null || { "$py" -m pip check; exit 1; }
fi
torch="$("$py" -c 'import importlib.metadata as m; print(m.version("torch"))')"
echo "raylung installed for $py (torch $torch, $(grep -c '==' requirements.lock) locked packages)"
