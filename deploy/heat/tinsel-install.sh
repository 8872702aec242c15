#!/bin/sh
# Installs a Tinsel release under /opt/tinsel: the `tinsel` binary with the
# web app's `site` folder beside it. The tarball may hold them at its top or
# in one folder. Usage: tinsel-install URL [SHA256]
set -eu
url="$1"
sum="${2:-}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 5 --retry-connrefused -o "$tmp/release.tar.gz" "$url"
if [ -n "$sum" ]; then
    echo "$sum  $tmp/release.tar.gz" | sha256sum -c -
fi
mkdir "$tmp/unpacked"
tar -xzf "$tmp/release.tar.gz" -C "$tmp/unpacked" --no-same-owner
bin="$(find "$tmp/unpacked" -maxdepth 2 -type f -name tinsel | head -n 1)"
if [ -z "$bin" ]; then
    echo "tinsel-install: no tinsel binary in $url" >&2
    exit 1
fi
from="$(dirname "$bin")"
if [ ! -d "$from/site" ]; then
    echo "tinsel-install: no site folder beside the binary in $url" >&2
    exit 1
fi
rm -rf /opt/tinsel.new
mkdir -p /opt/tinsel.new
cp -R "$from/tinsel" "$from/site" /opt/tinsel.new/
chmod -R u=rwX,go=rX /opt/tinsel.new
chmod 0755 /opt/tinsel.new/tinsel
rm -rf /opt/tinsel
mv /opt/tinsel.new /opt/tinsel
