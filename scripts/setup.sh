#!/usr/bin/env bash
# Create ./.venv and install raylung with its test tools from the pinned lock files, resolving
# nothing (refresh them with `bash scripts/lock.sh`); a rerun on an existing .venv takes seconds.
# torch comes first (DeepSpeed's build imports it): torch==2.13.0 from pip's configured index
# (the CPU build where pip is set up for it, as in CI); for CUDA:  TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
# -qq: errors only (pip warns once per package that a configured file:// index lacks)
pip=(.venv/bin/python -m pip install -qq --disable-pip-version-check)
"${pip[@]}" -r requirements-build.lock  # pip, setuptools, wheel and uv
# torch through pip, which picks the build from pip's configuration as it always has
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  # a CUDA build brings its own nvidia-* dependencies; the lock below re-pins the shared ones
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" --index-url "$TORCH_INDEX_URL"
else
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" -c requirements.lock  # its dependencies as locked
fi

# The lock itself goes through uv (measured 2x faster than pip here: parallel downloads, unzips
# and bytecode compilation). uv does not read pip's configuration, so it is handed pip's package
# sources (config files and PIP_* variables; later sections win as in pip); with exact pins,
# unsafe-best-match takes each pin from whichever of them has it, as pip does.
mapfile -t sources < <(.venv/bin/python - <<'PY'
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
uv=(.venv/bin/uv pip install -q --python .venv/bin/python --compile-bytecode
    --index-strategy unsafe-best-match ${sources[@]+"${sources[@]}"})
# --no-build-isolation: DeepSpeed (a source distribution) builds against the torch above.
lock_python="$(sed -n 's/^# python: //p' requirements.lock)"
venv_python="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$venv_python" = "$lock_python" ]; then
  # --no-deps: the lock is the whole resolved tree (pip check below catches a stale one)
  "${uv[@]}" --no-deps --no-build-isolation -r requirements.lock -e . || {
    echo "uv failed; installing the lock with pip instead" >&2
    "${pip[@]}" --no-deps --no-build-isolation -r requirements.lock -e .
  }
else
  # the lock's markers were evaluated for another Python: resolve, held to the lock's pins
  echo "requirements.lock is for Python $lock_python: resolving against its pins" >&2
  "${pip[@]}" --no-build-isolation -c requirements.lock -e ".[test]"
fi
.venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
torch="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')"
echo "raylung installed in .venv (torch $torch, $(grep -c '==' requirements.lock) locked packages)"
