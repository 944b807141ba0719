#!/usr/bin/env bash
# TorchSharp-cpu 0.107's libLibTorchSharp.so was built against GCC 13 and asks for GLIBCXX_3.4.32
# (only for std::ios_base_library_init()). Debian 12's libstdc++ stops at 3.4.30, so the library
# does not load. Where that is the case, we give it a shim that defines the one missing function,
# add the shim as a needed library and mark the version requirement weak. Idempotent.
set -euo pipefail
native_dir=${1:?usage: fix-libtorchsharp.sh <dir holding libLibTorchSharp.so>}
lib="$native_dir/libLibTorchSharp.so"
[ -f "$lib" ] || exit 0

system_libstdcxx=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
system_libstdcxx=${system_libstdcxx:-/usr/lib/x86_64-linux-gnu/libstdc++.so.6}
if grep -q GLIBCXX_3.4.32 "$system_libstdcxx" 2>/dev/null; then exit 0; fi

shim_name=libllmembedder_iosinit.so
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$native_dir/$shim_name" ]; then
  g++ -shared -fPIC -O2 -o "$native_dir/$shim_name.tmp" "$here/ios_base_library_init.cpp"
  mv "$native_dir/$shim_name.tmp" "$native_dir/$shim_name"
fi

if ! command -v patchelf >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "fix-libtorchsharp: installing patchelf (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null; }
  else
    echo "fix-libtorchsharp: patchelf is needed (apt-get install patchelf)" >&2; exit 1
  fi
fi

if patchelf --print-needed "$lib" | grep -qx "$shim_name"; then exit 0; fi
tmp="$lib.fixing"
cp "$lib" "$tmp"
patchelf --add-needed "$shim_name" "$tmp"
python3 "$here/weaken_version.py" "$tmp" GLIBCXX_3.4.32
mv "$tmp" "$lib"
echo "fix-libtorchsharp: patched $lib for this system's libstdc++" >&2
