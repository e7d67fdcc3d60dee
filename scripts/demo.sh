#!/usr/bin/env bash
# The main job on a bundled example: compile a fixture with k2-clang (clang + k2), optimize it,
# show what changed, and check the result in the kernel (verifier + a test run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/sbin:/sbin:$PATH"
out=demo-out
mkdir -p "$out"
src=fixtures/redundant.c
echo "== k2-clang: compile $src (clang -O2 -target bpf)"
node bin/k2-clang.js -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c "$src" -o "$out/redundant.o"
echo "== k2 opt: superoptimize (every rewrite proven by Z3, gated by the safety model and the kernel verifier)"
node bin/k2.js opt "$out/redundant.o" -o "$out/redundant.k2.o" --budget-ms 10000
echo "== what changed (k2 dis, first differences)"
diff <(node bin/k2.js dis --no-raw "$out/redundant.o" | tail -n +4) <(node bin/k2.js dis --no-raw "$out/redundant.k2.o" | tail -n +4) | head -20 || true
if node bin/k2.js verify "$out/redundant.k2.o"; then
  echo "== k2 run: the same packet through both objects"
  pkt=000102030405060708090a0b08004500002e0000400040110000c0a80001c0a8000230390035001a00000102030405060708090a0b0c0d0e0f1011
  node bin/k2.js run "$out/redundant.o" --prog xdp_redundant --data-hex "$pkt" --json
  node bin/k2.js run "$out/redundant.k2.o" --prog xdp_redundant --data-hex "$pkt" --json
else
  echo "(kernel checks skipped: bpf() unavailable here — the optimizer then relies on its safety model)"
fi
