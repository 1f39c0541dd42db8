#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/e2e/test_browser.py). Playwright
# drives it through executable_path; no browser build is ever downloaded.
set -euo pipefail
if [ -x /usr/lib/chromium/chromium ] || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "apt-get is not available: install Chromium (the 'chromium' package) yourself" >&2
    exit 2
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo -n"
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    chromium fonts-liberation
