#!/bin/sh
# Install Debian's Chromium for the headless page tests of the built book
# (tests/test_book.py). Does nothing when /usr/bin/chromium is already there.
# Needs root (or sudo) and apt-get; quiet and non-interactive.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: apt-get not found; install Chromium yourself so that /usr/bin/chromium exists." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium.sh: need root (or sudo) to run apt-get." >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "Installing Chromium with apt-get (for the book's page tests) ..."
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null

if [ ! -x /usr/bin/chromium ]; then
    echo "install-chromium.sh: apt-get finished but /usr/bin/chromium is missing." >&2
    exit 1
fi
echo "Chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
