#!/usr/bin/env bash
# The browser test drives Debian's chromium. Install it when missing and we
# may (root with apt-get, as on CI); otherwise say exactly what to do.
set -eu
chromium_path=${CHROMIUM_PATH:-/usr/bin/chromium}
[ -x "$chromium_path" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing Debian's chromium for the browser test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "test: the browser test needs chromium at $chromium_path: run 'sudo apt-get install -y chromium' (or set CHROMIUM_PATH)" >&2
exit 1
