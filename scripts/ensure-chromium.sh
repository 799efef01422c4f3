#!/usr/bin/env bash
# Make sure a headless browser is there for the report test (tests/test_report.py renders report.html in it).
# Idempotent and quiet: does nothing when one is installed; otherwise installs Debian's chromium with apt-get
# (as root, or through passwordless sudo). Never fails the build: without apt, root or network it prints a
# warning and exits 0, and the browser test skips with its reason.
set -u

for browser in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$browser" >/dev/null 2>&1; then
    exit 0
  fi
done

warn() { echo "ensure-chromium: warning: $*; the headless-browser report test will be skipped" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
  warn "no chromium and no apt-get to install it"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    warn "chromium is missing and installing it needs root"
    exit 0
  fi
fi

log=$(mktemp "${TMPDIR:-/tmp}/ensure-chromium.XXXXXX.log")
if { "${as_root[@]}" apt-get update -qq && \
     "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
  rm -f "$log"
else
  warn "apt-get install chromium failed (log: $log)"
fi
exit 0
