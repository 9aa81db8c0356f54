#!/usr/bin/env bash
# What only the tests and `make bench` need, on top of scripts/setup.sh (idempotent, safe to rerun;
# `make test` and the bench targets run it): chromium + chromium-driver (the browser test) and the
# pinned Selenium that drives them, wrk (the HTTP load generator) and libvips-tools (vips/vipsheader,
# which scripts/bench_serve.py uses to make its test images), and the Milvus standalone server (PyPI
# milvus==2.3.5) in its own virtual environment .venv-milvus/ for the Milvus tests
# (scripts/milvus_server.py) and scripts/bench_milvus*.py.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(chromium chromium-driver wrk libvips-tools python3-venv)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # python3-venv may come with a python3 from elsewhere (pyenv); only install it when venv is absent.
  case "$p" in
    python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-test: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup-test: Debian packages present"
fi

if ! python3 -c 'import importlib.metadata as m; assert m.version("selenium") == "4.27.1"' 2>/dev/null; then
  echo "setup-test: installing PyPI packages: selenium==4.27.1"
  python3 -m pip install --quiet --disable-pip-version-check selenium==4.27.1 2>&1 | grep -v "Running pip as the 'root' user" || true
else
  echo "setup-test: PyPI packages present"
fi

# Milvus for the tests: its own venv, so its pinned dependencies never meet the system's packages.
MILVUS_VENV=.venv-milvus
if ! "$MILVUS_VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("milvus") == "2.3.5"' 2>/dev/null; then
  echo "setup-test: installing milvus==2.3.5 into $MILVUS_VENV"
  python3 -m venv "$MILVUS_VENV"
  "$MILVUS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check milvus==2.3.5
else
  echo "setup-test: milvus server present ($MILVUS_VENV)"
fi
