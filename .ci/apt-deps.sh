#!/usr/bin/env bash
# Installs the Debian packages the tests need: Chromium (browser end-to-end tests), Mesa's
# Vulkan driver from bookworm-backports with libvulkan1 (software WebGPU through Dawn:
# Debian 12's own Mesa 22.3 lavapipe is rejected by Dawn), and reference tools for
# cross-checking files (nibabel; ITK through plastimatch; dcmtk).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SRC=/etc/apt/sources.list.d/debian.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/{print $2; exit}' "$SRC" 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    > /etc/apt/sources.list.d/backports.sources
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core python3-nibabel python3-numpy dcmtk plastimatch >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
