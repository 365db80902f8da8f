#!/usr/bin/env bash
# Create ./.venv and install raylung with its test tools.
# torch comes first (DeepSpeed's build imports it) as the CPU build torch==2.13.0 by default;
# for CUDA:  TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip "setuptools>=77" wheel
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" --index-url "$TORCH_INDEX_URL"
else
  "${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
fi
# --no-build-isolation: DeepSpeed (a source distribution) must build against the torch above.
"${pip[@]}" --no-build-isolation -e ".[test]"
echo "raylung installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
