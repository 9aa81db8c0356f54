#!/usr/bin/env bash
# `make deb`: out/lookalike_<version>_<arch>.deb from the release build. The binary has the Swift
# runtime linked in (--static-swift-stdlib; built in its own scratch folder .build-deb, apart from
# the developers' .build); the converted weights go to /usr/share/lookalike/models (where
# ModelLocator looks last), the sample photos to /usr/share/lookalike/samples, the systemd templates
# (packaging/systemd) to /lib/systemd/system. Depends: is derived with dpkg-shlibdeps from the
# binary and from the libvips loader modules it needs at run time, never written by hand. The
# version comes from Sources/LookalikeEngine/Support/Version.swift, the one place it is written.
# Idempotent; installs dpkg-dev, lintian, binutils and help2man when missing, and checks the package with
# lintian (fails on errors).
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SCRATCH=${DEB_SCRATCH:-$PWD/.build-deb}
# The Swift package to build: this tree, or SRC=DIR (e.g. a clean export of a commit, while this
# tree is being edited).
SRC=${SRC:-.}
MODEL=models/efficientnet-lite0.lkw
MAINTAINER=${DEB_MAINTAINER:-Lookalike maintainers <maintainers@lookalike.invalid>}
VERSION_FILE=$SRC/Sources/LookalikeEngine/Support/Version.swift

VERSION=$(sed -n 's/.*static let string = "\([^"]*\)".*/\1/p' "$VERSION_FILE")
[[ "$VERSION" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "deb: no version found in $VERSION_FILE" >&2; exit 1; }
# The OpenAPI description states the same version (info.version): it is a checked-in asset, so check it.
if ! grep -q "\"version\": \"$VERSION\"" "$SRC/Sources/LookalikeServer/Assets/openapi.json"; then
  echo "deb: $SRC/Sources/LookalikeServer/Assets/openapi.json info.version is not $VERSION ($VERSION_FILE)" >&2; exit 1
fi

missing=()
for p in dpkg-dev lintian binutils help2man; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deb: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -s "$MODEL" ] || { echo "deb: $MODEL is missing: run make setup" >&2; exit 1; }

echo "deb: swift build -c release --product lookalike --static-swift-stdlib --scratch-path $SCRATCH (in $SRC)"
"$SWIFT" build --package-path "$SRC" -c release --product lookalike --static-swift-stdlib --scratch-path "$SCRATCH"
BIN="$SCRATCH/release/lookalike"
if ldd "$BIN" | grep -Eq 'libswiftCore|libFoundation|libdispatch'; then
  echo "deb: $BIN loads the Swift runtime dynamically (want --static-swift-stdlib)" >&2; exit 1
fi

ARCH=$(dpkg --print-architecture)
DEB=out/lookalike_${VERSION}_${ARCH}.deb
# dpkg-shlibdeps wants a source tree: debian/control, the package staged in debian/lookalike.
WORK=out/deb-work
rm -rf "$WORK"
ROOT="$WORK/debian/lookalike"
DOC="$ROOT/usr/share/doc/lookalike"
mkdir -p "$ROOT/DEBIAN" "$ROOT/etc/lookalike" "$DOC"

install -D -m 0755 "$BIN" "$ROOT/usr/bin/lookalike"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/lookalike"
install -D -m 0644 "$MODEL" "$ROOT/usr/share/lookalike/models/$(basename "$MODEL")"
mkdir -p "$ROOT/usr/share/lookalike"
cp -r samples "$ROOT/usr/share/lookalike/samples"
install -D -m 0644 -t "$ROOT/lib/systemd/system" packaging/systemd/lookalike-serve@.service packaging/systemd/lookalike-watch@.service
install -m 0644 packaging/example.env packaging/debian/copyright "$DOC/"
if [ -f docs/install.md ]; then install -m 0644 docs/install.md "$DOC/install.md"; fi
# A native package's changelog: this version, dated by the commit that last changed the version.
DATE=$(git log -1 --format=%aD -- Sources/LookalikeEngine/Support/Version.swift 2>/dev/null || true)
[ -n "$DATE" ] || DATE=$(date -R)
printf 'lookalike (%s) bookworm; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
  "$VERSION" "$VERSION" "$MAINTAINER" "$DATE" | gzip -9n > "$DOC/changelog.gz"
# The manual page, generated from the binary's own help (help2man: `lookalike --help` and
# --version), with each subcommand's --help as a section.
SUBCOMMANDS=$("$BIN" --help | awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
{
  echo "[COMMANDS]"
  for c in $SUBCOMMANDS; do
    printf '.SS "lookalike %s"\n.nf\n' "$c"
    "$BIN" "$c" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    printf '.fi\n'
  done
  printf '[FILES]\n.TP\n/usr/share/lookalike/models/efficientnet-lite0.lkw\nThe network weights, used unless \\fB$LOOKALIKE_MODEL\\fR or \\fB\\-\\-model\\fR names others.\n'
  printf '.TP\n/usr/share/lookalike/samples\nSample photos (Caltech-101, CC BY 4.0).\n'
  printf '.TP\n/etc/lookalike/\\fINAME\\fR.env\nSettings of the library \\fINAME\\fR for lookalike-watch@\\fINAME\\fR.service and lookalike-serve@\\fINAME\\fR.service (see /usr/share/doc/lookalike/example.env).\n'
} > "$WORK/man.include"
mkdir -p "$ROOT/usr/share/man/man1"
help2man --no-info --name "reverse image search engine" --version-string "$VERSION" \
  --include "$WORK/man.include" "$BIN" | gzip -9n > "$ROOT/usr/share/man/man1/lookalike.1.gz"
# Lintian overrides, each with its reason.
mkdir -p "$ROOT/usr/share/lintian/overrides"
cat > "$ROOT/usr/share/lintian/overrides/lookalike" <<'OVERRIDES'
# zlib compiled into the binary: swift-nio-extras' CNIOExtrasZlib (pulled in by async-http-client),
# a vendored copy with prefixed symbols; SwiftPM links Swift package dependencies statically.
lookalike: embedded-library zlib [usr/bin/lookalike]
# prerm stops the running instances of the template units (lookalike-*@*.service), which
# deb-systemd-invoke cannot name.
lookalike: maintainer-script-calls-systemctl [prerm:*]
OVERRIDES
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$ROOT/DEBIAN/"
find "$ROOT" -type d -exec chmod 0755 {} +
find "$ROOT/usr/share" "$ROOT/lib" -type f -exec chmod 0644 {} +

# Run-time libraries. The binary's own (DT_NEEDED) ones, plus the libvips loader modules for HEIC/AVIF
# and JPEG XL: libvips dlopen()s them (vips-heif.so, vips-jxl.so, from libvips42, see
# scripts/setup.sh), so the binary does not link what they need (libheif1, libjxl0.7, ...). Deriving
# from the modules too states those; today libvips42 happens to depend on them as well.
VIPS_VERSION=$(pkg-config --modversion vips)
VIPS_MODULES="$(pkg-config --variable=libdir vips)/vips-modules-${VIPS_VERSION%.*}"
cat > "$WORK/debian/control" <<CONTROL
Source: lookalike

Package: lookalike
Architecture: any
CONTROL
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O -e debian/lookalike/usr/bin/lookalike \
  -e "$VIPS_MODULES/vips-heif.so" -e "$VIPS_MODULES/vips-jxl.so" 2> >(grep -v "binaries to analyze should already be installed" >&2))
SHLIBS=${SHLIBS#shlibs:Depends=}
[ -n "$SHLIBS" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# adduser: the postinst creates the lookalike system user with it (a tool, not a library).
DEPENDS="$SHLIBS, adduser"

INSTALLED_SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: lookalike
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: $DEPENDS
Section: graphics
Priority: optional
Description: reverse image search engine for local photo libraries
 Lookalike indexes folders of images (JPEG, PNG, WebP, TIFF, HEIC/AVIF,
 JPEG XL, ...) with a convolutional network and finds the most similar ones
 to an example image, from the command line or from a built-in web app and
 HTTP API (lookalike serve).
 .
 The package includes the network weights, sample photos in
 /usr/share/lookalike/samples and systemd templates to index and serve a
 library as an unprivileged user (lookalike-watch@.service,
 lookalike-serve@.service).
CONTROL
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/md5sums"

mkdir -p out
rm -f out/lookalike_*_"$ARCH".deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "deb: built $DEB ($(du -h "$DEB" | cut -f1))"
echo "deb: Depends: $DEPENDS"

echo "deb: lintian $DEB"
lintian --fail-on error --info "$DEB" || { echo "deb: lintian found errors" >&2; exit 1; }
echo "deb: lintian: no errors"
