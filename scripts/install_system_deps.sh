#!/usr/bin/env bash
# Installs the Debian packages the kit needs beyond Python wheels, only when they are missing:
#   ffmpeg          FFmpeg shared libraries for torchcodec (lerobot's video decoder)
#   chromium        the browser Playwright drives in the UI and book tests; kaleido renders the
#                   book's static plot PNGs with it (make book)
#   libegl1 + mesa  headless MuJoCo rendering (MUJOCO_GL=egl); libosmesa6 is the fallback
set -euo pipefail
need=()
command -v ffmpeg   >/dev/null 2>&1 || need+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'     || need+=(libegl1)
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so'  || need+=(libegl-mesa0 libgl1-mesa-dri)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so'    || need+=(libosmesa6)
if [ ${#need[@]} -eq 0 ]; then echo "system packages: all present"; exit 0; fi
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "Missing system packages: ${need[*]}"
    echo "Install them with: sudo apt-get install -y ${need[*]}   (then re-run make)"
    exit 1
  fi
else SUDO=""; fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: installed ${need[*]}"
