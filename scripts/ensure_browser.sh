#!/usr/bin/env bash
# Make Debian's Chromium available for the report.html browser test (tests/test_report_html.py),
# driven by Playwright with executable_path=/usr/bin/chromium: Playwright never downloads one.
# Never fails the build: without a browser that test skips (and fails under CI=true, where
# this script runs as root and installs it).
set -u
BROWSER=/usr/bin/chromium
if [ -x "$BROWSER" ]; then
    echo "Chromium: found at $BROWSER"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "Chromium: installing Debian's chromium package ..."
    if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; then
        echo "Chromium: installed at $BROWSER"
        exit 0
    fi
    echo "Chromium: apt-get could not install chromium."
fi
cat <<MSG
Chromium is not installed and could not be installed automatically (needs apt and root).
The report.html browser test skips without it (it fails when CI=true). To run it:
  - sudo apt-get install -y chromium        (Debian; the test uses $BROWSER)
MSG
exit 0
