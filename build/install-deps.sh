#!/usr/bin/env bash
# Debian packages the tests need: patchelf (TorchSharp fix), python3-torch + OpenBLAS (PyTorch reference values),
# python3-onnx (its checker accepts our ONNX exports), jemalloc (flat memory in long runs), Open MPI (mpirun, and libmpi.so.40 that training calls directly). Installs only what is missing.
set -euo pipefail
packages=(patchelf libjemalloc2 python3-torch python3-numpy python3-onnx libopenblas0-openmp openmpi-bin libopenmpi3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
