#!/bin/sh
# Installs a Tinsel release under /opt/tinsel: the `tinsel` binary with the
# web app's `site` folder beside it. The tarball may hold them at its top or
# in one folder. Usage: tinsel-install URL [SHA256]
# TINSEL_PREFIX installs elsewhere (the checks in deploy/validate use it).
set -eu
url="$1"
sum="${2:-}"
prefix="${TINSEL_PREFIX:-/opt/tinsel}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 5 --retry-connrefused -o "$tmp/release.tar.gz" "$url"
if [ -n "$sum" ]; then
    echo "$sum  $tmp/release.tar.gz" | sha256sum -c -
fi
mkdir "$tmp/unpacked"
tar -xzf "$tmp/release.tar.gz" -C "$tmp/unpacked" --no-same-owner
if [ -f "$tmp/unpacked/tinsel" ]; then
    from="$tmp/unpacked"
else
    from="$(find "$tmp/unpacked" -mindepth 2 -maxdepth 2 -type f -name tinsel \
        -exec dirname {} \; | head -n 1)"
fi
if [ -z "$from" ]; then
    echo "tinsel-install: no tinsel binary in $url" >&2
    exit 1
fi
if [ ! -d "$from/site" ]; then
    echo "tinsel-install: no site folder beside the binary in $url" >&2
    exit 1
fi
rm -rf "$prefix.new"
mkdir -p "$prefix.new"
cp -R "$from/tinsel" "$from/site" "$prefix.new/"
chmod -R u=rwX,go=rX "$prefix.new"
chmod 0755 "$prefix.new/tinsel"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
