#!/usr/bin/env bash
# Decides where the stable-ABI crash of docs/stable_abi.md lives, on the GPU machine, after
# bench/stable_abi_backtrace.sh built /tmp/stable: a one-op stable extension that throws, built
# here against this torch (crashes too: the machine's environment, e.g. an interposed unwinder;
# raises while sketchwalk crashes: our build); the loaded _C, its dynamic links and exported
# unwinder symbols, which library binds the unwinder at the throw, and the build's flags.
set -uo pipefail
OUT=${OUT:-/tmp/sketchwalk-out}/stable_abi
mkdir -p "$OUT" /tmp/mini_stable
cd /tmp/mini_stable
cat > boom.cpp <<'CPP'
// One stable-ABI op that throws on request: the smallest case of sketchwalk's error path.
#include <torch/csrc/stable/library.h>
#include <stdexcept>
void boom(int64_t fail) {
  if (fail) throw std::runtime_error("boom raised");
}
STABLE_TORCH_LIBRARY(mini_stable, m) { m.def("boom(int fail) -> ()"); }
STABLE_TORCH_LIBRARY_IMPL(mini_stable, CompositeExplicitAutograd, m) { m.impl("boom", TORCH_BOX(&boom)); }
CPP
T=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))")
# build_mini COMPILER SOURCE NAME [flags]: /tmp/mini_stable/NAME.so against this torch
# (log $OUT/NAME_build.log); prints the rc and how libstdc++ is linked.
build_mini() {
  local cxx=$1 src=$2 name=$3; shift 3
  $cxx -O2 -std=c++20 -shared -fPIC "$@" -DTORCH_TARGET_VERSION=0x020A000000000000 \
    -I"$T/include" "$src" -o "$name.so" -L"$T/lib" -ltorch_cpu -Wl,-rpath,"$T/lib" \
    > "$OUT/${name}_build.log" 2>&1
  local rc=$?
  echo "== $name build with $cxx ($($cxx --version | head -1)) rc=$rc (needs libstdc++.so.6: $(readelf -d "$name.so" 2>/dev/null \
    | grep -c 'libstdc++'), defines __cxa_throw: $(nm -D --defined-only "$name.so" 2>/dev/null \
    | grep -c ' __cxa_throw$'))"
}
# call_mini NAME: loads NAME.so, makes a valid call, then the call that throws (log
# $OUT/NAME_call.log); "raised" is right, a crash or "NO ERROR" is the defect.
call_mini() {
  python3 -X faulthandler -c "
import torch
torch.ops.load_library('/tmp/mini_stable/$1.so')
torch.ops.mini_stable.boom(0); print('$1 valid call ok')
try:
    torch.ops.mini_stable.boom(1); print('$1: NO ERROR')
except RuntimeError as e:
    print('$1 raised:', str(e)[:80])" > "$OUT/$1_call.log" 2>&1
  echo "== $1 call rc=$?: $(tr '\n' ' ' < "$OUT/$1_call.log" | cut -c1-300)"
}
build_mini g++ boom.cpp mini
call_mini mini
echo "== environment"; env | grep -E '^(LD_|PYTHON|TORCH|MALLOC)' ; python3 -c "import sys; print(sys.version)"
echo "== sketchwalk loaded from: $(cd /tmp && PYTHONPATH=/tmp/stable python3 -c 'import sketchwalk; print(sketchwalk._C.__file__)' 2>&1)"
so=$(ls /tmp/stable/sketchwalk/_C*.so 2>/dev/null | head -1)
if [ -n "$so" ]; then
  readelf -d "$so" | grep -E 'NEEDED|PATH'
  echo "== unwinder symbols defined in _C:"; nm -D --defined-only "$so" | grep -E '__cxa|_Unwind|personality' | head
  (cd /tmp && LD_DEBUG=bindings PYTHONPATH=/tmp/stable python3 "$OUT/call.py" cpu 2>&1 \
    | grep -E "(_Unwind_RaiseException|__cxa_throw|__gxx_personality_v0)'" | sort -u | head -12)
fi
echo "== build flags"; grep -E 'static-lib|LINKER_FLAGS:|CMAKE_CXX_COMPILER:|CMAKE_LINKER:' \
  /tmp/stable-build/CMakeCache.txt 2>/dev/null | grep -v '^//' | head -12

# 2026-12-06: the stable build's _C defined __cxa_* itself and did not need libstdc++.so.6
# (libstdc++ linked statically), while the one-op extension above raised. Where does the static
# copy come from, and is it what crashes?
echo "== compiler and linker environment"; env | grep -E '^(CC|CXX|LDFLAGS|CXXFLAGS|CFLAGS|CPPFLAGS)=' || echo "(none set)"
echo "libstdc++.so for -lstdc++: $(g++ -print-file-name=libstdc++.so)"
echo "libstdc++.a: $(g++ -print-file-name=libstdc++.a)"
echo "== _C's link line (build.ninja)"
grep -A8 -E '^build [^:]*_C[^:]*\.so' /tmp/stable-build/build.ninja 2>/dev/null \
  | grep -E 'LINK_FLAGS|LINK_LIBRARIES|LINK_PATH|^build' | cut -c1-1200
for so in /tmp/mini_stable/mini.so \
    "$(cd /tmp && python3 -c 'import sketchwalk._C as c; print(c.__file__)' 2>/dev/null)"; do
  [ -f "$so" ] || continue
  echo "== $so: needs libstdc++.so.6: $(readelf -d "$so" | grep -c 'libstdc++'), defines __cxa_throw: $(nm -D --defined-only "$so" | grep -c ' __cxa_throw$')"
done
# The hypothesis itself: the same one-op extension with libstdc++ linked statically.
build_mini g++ boom.cpp mini_static -static-libstdc++
call_mini mini_static

# 2026-12-06 (6): $CXX there is /opt/gcc/bin/g++, a shell wrapper around g++-real that adds
# -B/opt/gcc/lib/gcc/x86_64-linux-gnu/13/; the one-op builds above used /usr/bin/g++ from PATH,
# CMake uses $CXX, and both of our builds came out with libstdc++ static. Does the wrapper link
# it statically, and does a one-op extension built with it crash?
if [ -n "${CXX:-}" ] && [ -x "$CXX" ]; then
  echo "== CXX wrapper $CXX:"; head -c 600 "$CXX" | grep -a exec | cut -c1-400
  echo "libstdc++.so for -lstdc++ via CXX: $($CXX -print-file-name=libstdc++.so)"
  echo "libgcc_s.so via CXX: $($CXX -print-file-name=libgcc_s.so)"
  ls /opt/gcc/lib/gcc/x86_64-linux-gnu/13/ 2>/dev/null | grep -E 'libstdc|libgcc|libsupc' | tr '\n' ' '; echo
  build_mini "$CXX" boom.cpp mini_cxx
  call_mini mini_cxx
fi

# The checks.h note (ostream << long crashed in the ATen module there) and the stable op's
# former std::ostringstream message: a one-op extension that formats its message so, built
# with $CXX and with /usr/bin/g++. Crashes with $CXX only: the wrapper's static libstdc++
# ostream is the cause, and csrc/message.h (strings only) the fix.
cat > boom_ostream.cpp <<'CPP'
#include <torch/csrc/stable/library.h>
#include <sstream>
#include <stdexcept>
void boom(int64_t fail) {
  std::ostringstream msg;
  msg << "boom raised with " << fail;
  if (fail) throw std::runtime_error(msg.str());
}
STABLE_TORCH_LIBRARY(mini_stable, m) { m.def("boom(int fail) -> ()"); }
STABLE_TORCH_LIBRARY_IMPL(mini_stable, CompositeExplicitAutograd, m) { m.impl("boom", TORCH_BOX(&boom)); }
CPP
n=0
for cxx in "${CXX:-g++}" /usr/bin/g++; do
  n=$((n + 1))
  build_mini "$cxx" boom_ostream.cpp "mini_ostream_cxx$n"
  call_mini "mini_ostream_cxx$n"
done
