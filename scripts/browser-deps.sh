#!/usr/bin/env bash
# Headless Chromium for the browser (e2e) tests in tests/e2e/.
# Playwright's own browser download does not work offline, so the tests drive
# Debian's `chromium` package (/usr/bin/chromium, or $CAI_CHROMIUM).
# Installs it when it is missing and we are root on a Debian/Ubuntu machine;
# otherwise prints why not and exits 0 (the e2e tests then skip with the reason).
set -uo pipefail

chromium=${CAI_CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  echo "== browser: $chromium is installed ($("$chromium" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "== browser: $chromium is missing and this is not root; the e2e tests will skip" \
       "(install it with: sudo apt-get install -y chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "== browser: $chromium is missing and there is no apt-get; the e2e tests will skip" \
       "(install Chromium and set CAI_CHROMIUM=/path/to/chromium)"
  exit 0
fi
echo "== browser: installing Debian's chromium package (apt-get install -y chromium)"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -q >/tmp/cai-browser-deps.log 2>&1 \
   && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >>/tmp/cai-browser-deps.log 2>&1; then
  echo "== browser: installed $("$chromium" --version 2>/dev/null || echo "$chromium")"
else
  echo "== browser: apt-get could not install chromium (see /tmp/cai-browser-deps.log);" \
       "the e2e tests will skip"
  tail -5 /tmp/cai-browser-deps.log || true
fi
exit 0
