#!/usr/bin/env bash
# k2 on a bundled example, the way a newcomer meets it: compile an XDP parser with plain clang,
# superoptimize clang's object with `k2 opt`, and show what changed (slots, the first differing
# lines of the disassembly), the kernel verifier's verdict on both objects and one test run of
# each with the same packet. Then the same source through `k2-clang`, as a build would use it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/sbin:/sbin:$PATH"
out=demo-out
mkdir -p "$out"
arch=$(uname -m)
case "$arch" in x86_64) karch=x86 ;; aarch64) karch=arm64 ;; *) karch=$arch ;; esac
src=fixtures/xdp_parser.c
flags=(-O2 -g -target bpf "-I/usr/include/$arch-linux-gnu" "-D__TARGET_ARCH_$karch")
k2() { node bin/k2.js "$@"; }
slots() { k2 dis --json "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).sections.reduce((n,x)=>n+x.slots,0)))'; }

echo "== 1. plain clang: $src -> $out/xdp_parser.o"
clang "${flags[@]}" -c "$src" -o "$out/xdp_parser.o"
echo "   $(slots "$out/xdp_parser.o") instruction slots"

echo
echo "== 2. k2 opt: every rewrite proven equivalent (Z3 / normal form / control-flow pairing),"
echo "   checked by k2's model of the verifier, then by the kernel's verifier where bpf() works"
k2 opt "$out/xdp_parser.o" -o "$out/xdp_parser.k2.o" --time 20
before=$(slots "$out/xdp_parser.o")
after=$(slots "$out/xdp_parser.k2.o")
echo "   before -> after: $before -> $after slots ($(node -e "console.log((100*($before-$after)/$before).toFixed(1))")% smaller)"

echo
echo "== 3. what changed (k2 dis without addresses and jump offsets, the first differing lines; < clang, > k2)"
norm() { k2 dis --no-raw "$1" | tail -n +4 | sed -E 's/^ *[0-9]+:\t//; s/goto [+-][0-9]+ /goto /' | grep -v '^$'; }
diff <(norm "$out/xdp_parser.o") <(norm "$out/xdp_parser.k2.o") | grep '^[<>]' | head -20 || true

echo
echo "== 4. the kernel verifier on both objects"
status=0
k2 verify "$out/xdp_parser.o" || status=$?
k2 verify "$out/xdp_parser.k2.o" || status=$?
if [ "$status" -eq 0 ]; then
  echo
  echo "== 5. one IPv4/UDP packet through both (BPF_PROG_TEST_RUN): same verdict, same output packet"
  echo "   (XDP_PASS = 2; the IPv4 header comes back with TTL 0x40 -> 0x3f and its checksum updated)"
  pkt=000102030405060708090a0b08004500002e0000400040110000c0a80001c0a8000230390035001a00000102030405060708090a0b0c0d0e0f1011
  echo "   packet in:                    IPv4 header ${pkt:28:40}"
  for o in "$out/xdp_parser.o" "$out/xdp_parser.k2.o"; do
    printf '   %-29s ' "$o:"
    k2 run "$o" --prog xdp_parser --data-hex "$pkt" --json |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(`IPv4 header ${String(r.dataOut).slice(28, 68)}, retval ${r.retval}`)})'
  done
else
  echo "(the kernel could not check both objects here — bpf() needs root/CAP_BPF; k2 then relies on its safety model)"
fi

echo
echo "== 6. in a build: the same source through k2-clang (make CLANG=k2-clang), a build cache under ${K2_CACHE_DIR:-~/.cache/k2}"
node bin/k2-clang.js "${flags[@]}" -c "$src" -o "$out/xdp_parser.k2clang.o"
node bin/k2-clang.js "${flags[@]}" -c "$src" -o "$out/xdp_parser.k2clang.o"
echo "   (the second compile of the same source reuses the stored result after re-proving it: [cache hit])"
