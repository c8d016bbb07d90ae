#!/bin/sh
# Re-vendor the console's charting library from the npm registry (run by hand when bumping it; the
# console never loads anything from a CDN). Checks the tarball against the registry's pinned integrity.
#   sh console/vendor/update.sh
set -eu
NAME=uplot
VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "$NAME@$VERSION" >/dev/null)
TARBALL="$WORK/$NAME-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
[ "$GOT" = "$INTEGRITY" ] || { echo "integrity mismatch for $NAME@$VERSION: $GOT" >&2; exit 1; }
tar -xzf "$TARBALL" -C "$WORK"
mkdir -p "$HERE/uplot"
cp "$WORK/package/dist/uPlot.esm.js" "$WORK/package/dist/uPlot.min.css" "$WORK/package/LICENSE" "$HERE/uplot/"
echo "vendored $NAME@$VERSION into $HERE/uplot/"
