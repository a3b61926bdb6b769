#!/usr/bin/env bash
# The browser test drives Debian's chromium; the cluster tests start Debian's
# redis-server. Install what is missing when we may (root with apt-get, as on
# CI); otherwise say exactly what to do.
set -eu
chromium_path=${CHROMIUM_PATH:-/usr/bin/chromium}
missing=()
[ -x "$chromium_path" ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing Debian's ${missing[*]} for the browser and cluster tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "test: the tests need ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' (chromium may also be given as CHROMIUM_PATH)" >&2
exit 1
