// .kconfig externs, filled in the way libbpf fills them (bpf_object__collect_externs,
// bpf_object__resolve_externs): LINUX_KERNEL_VERSION from uname, LINUX_HAS_BPF_COOKIE and
// LINUX_HAS_SYSCALL_WRAPPER from what the kernel supports, CONFIG_* from /proc/config.gz (or
// /boot/config-RELEASE). libbpf lays the externs out in one read-only map (by decreasing alignment,
// then increasing size, then name), fills it and freezes it, so the verifier reads the values as
// constants. A strong extern without a value makes libbpf refuse the object; a weak one reads 0.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { KIND, skipMods, type KBtf } from './kbtf.js';

export interface KconfigExtern { name: string; off: number; size: number }
export interface KconfigMap {
  /** The map's contents as libbpf freezes them. */
  bytes: Uint8Array;
  externs: Map<string, KconfigExtern>;
  /** Externs without a value here: zeros when weak, libbpf refuses the object when strong. */
  missing: string[];
  /** Why libbpf would refuse the object (an extern of a type it cannot fill). */
  error: string | null;
}

type Kind = { k: 'bool' } | { k: 'char' } | { k: 'tristate' } | { k: 'int'; size: number; signed: boolean } | { k: 'chararr'; size: number };

function kindOf(btf: KBtf, typeId: number): Kind | null {
  const s = skipMods(btf, typeId);
  if (!s) return null;
  const t = s.t;
  if (t.kind === KIND.INT) {
    if (t.sizeOrType === 1 && t.name === '_Bool') return { k: 'bool' };
    if (t.sizeOrType === 1 && t.name === 'char') return { k: 'char' };
    if ([1, 2, 4, 8].includes(t.sizeOrType)) return { k: 'int', size: t.sizeOrType, signed: t.intSigned };
    return null;
  }
  if (t.kind === KIND.ENUM && t.name === 'libbpf_tristate') return { k: 'tristate' };
  if (t.kind === KIND.ARRAY) {
    const e = skipMods(btf, t.elem);
    if (e && e.t.kind === KIND.INT && e.t.sizeOrType === 1) return { k: 'chararr', size: t.nelems };
  }
  return null;
}
const sizeOf = (k: Kind): number => (k.k === 'bool' || k.k === 'char' ? 1 : k.k === 'tristate' ? 4 : k.size);
const alignOf = (k: Kind): number => (k.k === 'chararr' ? 1 : sizeOf(k));

let config: Map<string, string> | null | undefined;
/** The running kernel's configuration (CONFIG_X -> value as written in the config file). */
function kernelConfig(): Map<string, string> | null {
  if (config !== undefined) return config;
  let text: string | null = null;
  try {
    if (existsSync('/proc/config.gz')) text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    else if (existsSync(`/boot/config-${release()}`)) text = readFileSync(`/boot/config-${release()}`, 'utf8');
  } catch { text = null; }
  if (text === null) return (config = null);
  config = new Map();
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) config.set(m[1]!, m[2]!);
  }
  return config;
}

/** libbpf's KERNEL_VERSION of uname's release (patch level capped at 255). */
function kernelVersion(): number {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(release());
  return m ? (Number(m[1]) << 16) + (Number(m[2]) << 8) + Math.min(Number(m[3]), 255) : 0;
}

/** The value libbpf writes for one extern, or null when it has none (strong: refused; weak: zeros). */
function valueOf(name: string, k: Kind): bigint | string | null {
  if (name === 'LINUX_KERNEL_VERSION') return k.k === 'int' ? BigInt(kernelVersion()) : null;
  // Both are supported on the kernels k2 targets (6.x, x86-64 and arm64 syscall wrappers).
  if (name === 'LINUX_HAS_BPF_COOKIE' || name === 'LINUX_HAS_SYSCALL_WRAPPER') return k.k === 'bool' ? 1n : null;
  if (!name.startsWith('CONFIG_')) return null;
  const cfg = kernelConfig();
  if (!cfg) return null;
  const v = cfg.get(name);
  if (v === undefined) return k.k === 'chararr' ? null : k.k === 'bool' || k.k === 'tristate' ? 0n : null;
  switch (k.k) {
    case 'bool': return v === 'y' ? 1n : v === 'n' ? 0n : null;
    case 'tristate': return v === 'y' ? 1n : v === 'm' ? 2n : v === 'n' ? 0n : null;
    case 'char': return v === 'y' || v === 'm' || v === 'n' ? BigInt(v.charCodeAt(0)) : null;
    case 'int': {
      if (!/^(0x[0-9a-fA-F]+|-?\d+)$/.test(v)) return null;
      const n = BigInt(v);
      return k.signed ? BigInt.asUintN(8 * k.size, n) : n;
    }
    case 'chararr': return /^".*"$/.test(v) ? v.slice(1, -1) : null;
  }
}

/** The .kconfig map libbpf builds for an object, from its BTF (DATASEC .kconfig), or null if it has none. */
export function kconfigMap(btf: KBtf | null): KconfigMap | null {
  if (!btf) return null;
  const sec = btf.types.find((t) => t.kind === KIND.DATASEC && t.name === '.kconfig');
  if (!sec) return null;
  const vars: { name: string; kind: Kind | null }[] = [];
  for (const v of sec.vars) {
    const vt = btf.types[v.type];
    if (!vt || vt.kind !== KIND.VAR) continue;
    vars.push({ name: vt.name, kind: kindOf(btf, vt.sizeOrType) });
  }
  const sorted = vars.filter((v) => v.kind).sort((a, b) => {
    const ka = a.kind!, kb = b.kind!;
    if (alignOf(ka) !== alignOf(kb)) return alignOf(kb) - alignOf(ka);
    if (sizeOf(ka) !== sizeOf(kb)) return sizeOf(ka) - sizeOf(kb);
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  const externs = new Map<string, KconfigExtern>();
  let off = 0;
  for (const v of sorted) {
    const k = v.kind!;
    off = Math.ceil(off / alignOf(k)) * alignOf(k);
    externs.set(v.name, { name: v.name, off, size: sizeOf(k) });
    off += sizeOf(k);
  }
  const bytes = new Uint8Array(Math.max(off, 1));
  const missing: string[] = [];
  for (const v of sorted) {
    const e = externs.get(v.name)!;
    const val = valueOf(v.name, v.kind!);
    if (val === null) { missing.push(v.name); continue; }
    if (typeof val === 'string') {
      const b = Buffer.from(val, 'latin1');
      bytes.set(b.subarray(0, Math.max(0, e.size - 1)), e.off);
      continue;
    }
    for (let i = 0; i < e.size; i++) bytes[e.off + i] = Number((val >> BigInt(8 * i)) & 0xffn);
  }
  const unknownTypes = vars.filter((v) => !v.kind).map((v) => v.name);
  return {
    bytes,
    externs,
    missing,
    error: unknownTypes.length ? `kconfig extern ${unknownTypes[0]} of a type libbpf cannot fill` : null,
  };
}
