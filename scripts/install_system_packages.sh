#!/usr/bin/env bash
# Debian/Ubuntu packages for napari on a virtual screen (Xvfb + Mesa OpenGL + Qt's xcb plugin).
# Needed on a machine without a desktop (CI, a beamline server); a desktop already has them.
set -euo pipefail
PACKAGES="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0
 libxcb-cursor0 libdbus-1-3 libfontconfig1"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# shellcheck disable=SC2086
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
