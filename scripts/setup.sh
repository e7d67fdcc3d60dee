#!/usr/bin/env bash
# Installs what k2 needs on a fresh Debian machine: clang/llvm (BPF backend, llvm-objdump),
# bpftool, libbpf (headers for fixtures, libbpf.so.1 for the koffi loader), then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v llvm-objdump >/dev/null 2>&1 || need+=(llvm)
command -v bpftool >/dev/null 2>&1 || [ -x /usr/sbin/bpftool ] || need+=(bpftool)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >/dev/null; else npm install --no-audit --no-fund >/dev/null; fi
fi
