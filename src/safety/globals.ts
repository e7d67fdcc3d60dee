// Global functions (BTF linkage global): the kernel verifies each on its own, with argument
// registers typed from its BTF FUNC_PROTO (btf_prepare_func_args), and checks every call against
// the same types (btf_check_subprog_call). An argument is a scalar (int, enum), the program's
// context (a pointer to the program type's context struct, or any pointer tagged arg:ctx), or
// memory of the pointee's size that may be NULL (tagged arg:nonnull: may not). Anything else
// (arg:trusted/untrusted/arena, dynptrs, by-value structs, pointers to void) is not modelled.
import { KIND, isModifier, skipMods, resolveSize, vmlinux, type KBtf } from './kbtf.js';

export type GlobalArg =
  | { kind: 'scalar' }
  | { kind: 'ctx' }
  | { kind: 'mem'; size: number; nullable: boolean }
  | { kind: 'unsupported'; why: string };

/** The names the kernel accepts for a program type's context struct (btf_is_prog_ctx_type), from struct bpf_ctx_convert. */
const CTX_NAMES = new Map<string, string[]>();
export function ctxNames(progType: string): string[] {
  let names = CTX_NAMES.get(progType);
  if (names) return names;
  names = [];
  const btf = vmlinux();
  const conv = btf?.byName.get('bpf_ctx_convert')?.find((t) => t.kind === KIND.STRUCT);
  const m = conv?.members.find((x) => x.name === `BPF_PROG_TYPE_${progType.toUpperCase()}_prog`);
  // The user-visible type and, through typedefs and modifiers, the struct it names.
  let id = m?.type ?? 0;
  for (let n = 0; btf && id && n < 16; n++) {
    const t = btf.types[id];
    if (!t) break;
    if (t.name) names.push(t.name);
    if (!isModifier(t)) break;
    id = t.sizeOrType;
  }
  CTX_NAMES.set(progType, names);
  return names;
}

/** decl tags "arg:X" on parameter `i` of function `fnId`. */
function argTags(btf: KBtf, fnId: number, i: number): string[] {
  const out: string[] = [];
  for (const t of btf.types) if (t.kind === KIND.DECL_TAG && t.sizeOrType === fnId && t.component === i && t.name.startsWith('arg:')) out.push(t.name.slice(4));
  return out;
}

/** Argument types of global function `funcTypeId` (a BTF FUNC of the object), or why it cannot be modelled. */
export function globalArgs(btf: KBtf | null, funcTypeId: number | undefined, progType: string): GlobalArg[] {
  if (!btf || funcTypeId === undefined) return [{ kind: 'unsupported', why: 'global function without BTF' }];
  const fn = btf.types[funcTypeId];
  if (!fn || fn.kind !== KIND.FUNC) return [{ kind: 'unsupported', why: 'global function without BTF FUNC' }];
  const proto = btf.types[fn.sizeOrType];
  if (!proto || proto.kind !== KIND.FUNC_PROTO) return [{ kind: 'unsupported', why: 'global function without prototype' }];
  if (proto.params.length > 5) return [{ kind: 'unsupported', why: `global function with ${proto.params.length} > 5 args` }];
  // 6.18 refuses global functions that do not return a scalar, void ones included (later kernels take void).
  const ret = skipMods(btf, proto.sizeOrType);
  if (!ret || (ret.t.kind !== KIND.INT && ret.t.kind !== KIND.ENUM && ret.t.kind !== KIND.ENUM64)) {
    return [{ kind: 'unsupported', why: `global function ${fn.name}() doesn't return scalar` }];
  }
  const names = ctxNames(progType);
  return proto.params.map((p, i): GlobalArg => {
    const tags = argTags(btf, funcTypeId, i);
    const t = skipMods(btf, p.type);
    if (!t) return { kind: 'unsupported', why: `arg#${i} type not found` };
    if (t.t.kind !== KIND.PTR) {
      if (tags.length) return { kind: 'unsupported', why: `arg#${i} has pointer tag, but is not a pointer type` };
      return t.t.kind === KIND.INT || t.t.kind === KIND.ENUM || t.t.kind === KIND.ENUM64 ? { kind: 'scalar' } : { kind: 'unsupported', why: `arg#${i} type is not supported` };
    }
    if (tags.includes('ctx')) return tags.length === 1 ? { kind: 'ctx' } : { kind: 'unsupported', why: `arg#${i} has invalid combination of tags` };
    if (isCtxPointer(btf, t.t.sizeOrType, progType, names)) return tags.length ? { kind: 'unsupported', why: `arg#${i} has invalid combination of tags` } : { kind: 'ctx' };
    if (tags.some((x) => x !== 'nonnull')) return { kind: 'unsupported', why: `arg#${i} tags ${tags.join(',')} are not modelled` };
    const pointee = skipMods(btf, t.t.sizeOrType);
    if (pointee && (pointee.t.kind === KIND.STRUCT || pointee.t.kind === KIND.FWD) && pointee.t.name === 'bpf_dynptr') return { kind: 'unsupported', why: `arg#${i} dynptr is not modelled` };
    const r = resolveSize(btf, t.t.sizeOrType);
    if (!r || r.size <= 0) return { kind: 'unsupported', why: `arg#${i} reference type size cannot be determined` };
    return { kind: 'mem', size: r.size, nullable: !tags.includes('nonnull') };
  });
}

/** btf_is_prog_ctx_type: a pointer to the program type's context struct (by name). */
function isCtxPointer(btf: KBtf, pointee: number, progType: string, names: string[]): boolean {
  // kprobes also accept the bpf_user_pt_regs_t typedef itself.
  if (progType === 'kprobe') {
    let t = btf.types[pointee];
    for (let n = 0; t && isModifier(t) && t.kind !== KIND.TYPEDEF && n < 16; n++) t = btf.types[t.sizeOrType];
    if (t && t.kind === KIND.TYPEDEF && t.name === 'bpf_user_pt_regs_t') return true;
  }
  const s = skipMods(btf, pointee);
  if (!s || (s.t.kind !== KIND.STRUCT && s.t.kind !== KIND.UNION) || !s.t.name) return false;
  return names.includes(s.t.name);
}
