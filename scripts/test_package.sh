#!/usr/bin/env bash
# `make test-package`: the .deb on a bare Debian 12. debootstrap --variant=minbase bookworm into
# out/pkgroot (from the mirror this machine's apt uses), copy the package in, `apt-get install -y
# ./lookalike_*.deb` in a chroot, then with no other step: no Swift toolchain or runtime there,
# `lookalike index` the installed samples, `lookalike search` a dalmatian (at least 4 of the 5
# answers must be dalmatians), `lookalike embed` a HEIC, an AVIF and a JPEG XL photo (libvips'
# loader modules) and `lookalike serve` answering /api/stats. Prints the package's size
# and Depends line. Needs root (debootstrap, chroot, mounts); installs debootstrap and curl if missing.
# The debootstrapped base is kept in out/pkgroot-base and copied for each run (FRESH=1 remakes it).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "test-package: run as root (debootstrap, chroot, mount)" >&2; exit 1; }
ARCH=$(dpkg --print-architecture)
shopt -s nullglob
debs=(out/lookalike_*_"$ARCH".deb)
((${#debs[@]} == 1)) || { echo "test-package: want exactly one out/lookalike_*_$ARCH.deb (make deb)" >&2; exit 1; }
DEB=${debs[0]}

missing=()
for p in debootstrap curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test-package: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian mirror (and security mirror) apt already uses: one-line sources.list entries or deb822
# .sources files; deb.debian.org when none is found.
apt_uris() {  # all "deb" URIs apt is configured with, one per line
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
}
MIRROR=$(apt_uris | grep -E '/debian/?$' | head -n1 || true)
SECURITY=$(apt_uris | grep -E '/debian-security/?$' | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}
SECURITY=${SECURITY%/}

BASE=out/pkgroot-base
ROOT=out/pkgroot
PORT=${PORT:-18765}
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  unmount_root
}
unmount_root() {  # proc and sys in the root (debootstrap made its own /dev nodes, so no /dev mount)
  local m
  for m in sys proc; do
    if mountpoint -q "$ROOT/$m" 2>/dev/null; then umount -l "$ROOT/$m" || true; fi
  done
}
trap cleanup EXIT INT TERM
unmount_root  # left by a run that was killed

if [ "${FRESH:-0}" = 1 ] || [ ! -f "$BASE/.lookalike-base-ok" ]; then
  echo "test-package: debootstrap --variant=minbase bookworm $BASE $MIRROR"
  rm -rf --one-file-system "$BASE"
  debootstrap --variant=minbase bookworm "$BASE" "$MIRROR" > out/debootstrap.log 2>&1 \
    || { tail -20 out/debootstrap.log >&2; exit 1; }
  {
    echo "deb $MIRROR bookworm main"
    echo "deb $MIRROR bookworm-updates main"
    if [ -n "$SECURITY" ]; then echo "deb $SECURITY bookworm-security main"; fi
  } > "$BASE/etc/apt/sources.list"
  rm -f "$BASE"/var/cache/apt/archives/*.deb
  touch "$BASE/.lookalike-base-ok"
fi
echo "test-package: fresh root $ROOT (copy of the minbase bookworm in $BASE)"
rm -rf --one-file-system "$ROOT"
cp -a "$BASE" "$ROOT"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
cp "$DEB" "$ROOT/root/"

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c "$1"; }

echo "test-package: apt-get install -y ./$(basename "$DEB")"
in_root "cd /root && apt-get update -qq && apt-get install -y -qq ./$(basename "$DEB") > /root/install.log 2>&1 \
  || { tail -30 /root/install.log; exit 1; }; dpkg-query -W -f='\${Status}\n' lookalike"

echo "test-package: no Swift toolchain or runtime in the root"
in_root '
  for t in swift swiftc swift-frontend; do
    if command -v "$t" >/dev/null; then echo "FAIL: $t is installed: $(command -v "$t")"; exit 1; fi
  done
  found=$(find / -xdev \( -name "libswiftCore.so*" -o -name "libFoundation.so*" -o -name "libdispatch.so*" \) -print -quit)
  [ -z "$found" ] || { echo "FAIL: Swift runtime library in the root: $found"; exit 1; }
  getent passwd lookalike >/dev/null || { echo "FAIL: no lookalike user"; exit 1; }
  lookalike --version'

echo "test-package: lookalike index /usr/share/lookalike/samples/library --db /tmp/s.db"
in_root 'lookalike index /usr/share/lookalike/samples/library --db /tmp/s.db'

echo "test-package: lookalike search /usr/share/lookalike/samples/queries/dalmatian_0010.jpg --db /tmp/s.db"
in_root '
  lookalike search /usr/share/lookalike/samples/queries/dalmatian_0010.jpg --db /tmp/s.db -k 5 | tee /tmp/search.txt
  hits=$(grep -c "/dalmatian/" /tmp/search.txt || true)
  [ "$hits" -ge 4 ] || { echo "FAIL: $hits of 5 answers are dalmatians (want at least 4)"; exit 1; }
  echo "$hits of 5 answers are dalmatians"'

# HEIC, AVIF and JPEG XL go through libvips' loader modules (vips-heif.so, vips-jxl.so), which the
# binary does not link: this checks that the package's Depends brought what they need.
echo "test-package: lookalike embed cat.heic cat.avif cat.jxl (libvips' heif and jxl loader modules)"
mkdir -p "$ROOT/tmp/formats"
cp Tests/EngineTests/Fixtures/decode/cat.heic Tests/EngineTests/Fixtures/decode/cat.avif \
  Tests/EngineTests/Fixtures/decode/cat.jxl "$ROOT/tmp/formats/"
in_root '
  lookalike embed /tmp/formats/cat.heic /tmp/formats/cat.avif /tmp/formats/cat.jxl | tee /tmp/embed.txt
  decoded=$(grep -Ec "^/tmp/formats/cat\.(heic|avif|jxl) +451x300 " /tmp/embed.txt || true)
  cats=$(grep -Ec "^ +[0-9]+ +[0-9.]+ +Egyptian Mau$" /tmp/embed.txt || true)
  [ "$decoded" -eq 3 ] && [ "$cats" -eq 3 ] || { echo "FAIL: the HEIC, AVIF and JPEG XL cats were not all decoded and recognised"; exit 1; }'

echo "test-package: lookalike serve --db /tmp/s.db --port $PORT, then GET /api/stats"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  lookalike serve --db /tmp/s.db --host 127.0.0.1 --port "$PORT" > out/pkgroot-serve.log 2>&1 &
SERVER_PID=$!
stats=""
for _ in $(seq 1 60); do
  stats=$(curl -fsS "http://127.0.0.1:$PORT/api/stats" 2>/dev/null) && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat out/pkgroot-serve.log >&2; echo "FAIL: lookalike serve exited" >&2; exit 1; }
  sleep 0.5
done
[ -n "$stats" ] || { cat out/pkgroot-serve.log >&2; echo "FAIL: no answer from /api/stats" >&2; exit 1; }
echo "${stats:0:300}..."
VERSION=$(dpkg-deb -f "$DEB" Version)
echo "$stats" | grep -Eq "\"version\" *: *\"$VERSION\"" || { echo "FAIL: /api/stats does not say version $VERSION" >&2; exit 1; }
echo "$stats" | grep -Eq '"images" *: *36' || { echo "FAIL: /api/stats does not count the 36 sample images" >&2; exit 1; }
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

echo
echo "test-package: PASS"
echo "package: $DEB, $(du -h "$DEB" | cut -f1) ($(stat -c %s "$DEB") bytes), installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB"
echo "Depends: $(dpkg-deb -f "$DEB" Depends)"
