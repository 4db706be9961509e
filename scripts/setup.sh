#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment with torch 2.13.0 (the local CPU wheel), every
# pinned requirement, the `moshi` package without its (too old) pins, and moshivis itself in editable mode.
# Every pip call carries constraints.txt (torch==2.13.0) so nothing can pull another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages, best effort (their tests skip, saying why, without them): TTS voices for the data
# pipeline's user voice pool, and headless Chromium for the web page's browser test.
want=()
command -v flite >/dev/null || want+=(flite)
command -v espeak-ng >/dev/null || want+=(espeak-ng)
if [ -z "${MOSHIVIS_NO_BROWSER:-}" ]; then
  command -v chromium >/dev/null || want+=(chromium)
  command -v chromedriver >/dev/null || want+=(chromium-driver)
fi
if [ ${#want[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null 2>&1; }) ||
      echo "warning: could not install ${want[*]}"
  else
    echo "note: install ${want[*]} (Debian packages) for the extra TTS voices and the browser test"
  fi
fi
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/pip install --disable-pip-version-check -q -c constraints.txt)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -r requirements.txt
# moshi 0.2.13 pins torch<2.10 and old hub/numpy; its real runtime needs are in requirements.txt.
"${PIP[@]}" --no-deps moshi==0.2.13
"${PIP[@]}" --no-deps --no-build-isolation -e .
.venv/bin/python -c "import torch, moshi, moshivis; print('moshivis ready: torch', torch.__version__)"
