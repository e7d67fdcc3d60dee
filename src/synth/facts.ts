// Window preconditions from the safety model: every abstract state its exploration reaches at an
// instruction of the section, over every program that runs the section, joined into one
// precondition per instruction: pointer kinds with their regions and offsets, packet range, map
// value sizes (K2's memory-type and offset concretization). Scalar facts are left out: the
// verifier's knowledge of values may outlive the memory it came from (a global function writes
// the caller's stack through a pointer argument, and the verifier keeps the zeros it knew there —
// calls.o's flow_hash was "proven" for arguments 0). Scalars come from constant propagation and
// known-bits analysis over registers instead.
import type { BpfObject, ProgramRef } from '../ir/types.js';
import { programCode } from '../ir/index.js';
import { Checker, Unsafe, linkProgram } from '../safety/index.js';
import type { State } from '../safety/state.js';
import { joinPre, preFromSafety, type WindowPre } from '../smt/index.js';

/**
 * Joined precondition per instruction index of section `secName` (absent: never reached), or null
 * when some program running the section is not accepted by the model (then nothing is known).
 */
export function sectionPres(obj: BpfObject, secName: string, programs?: ProgramRef[]): Map<number, WindowPre> | null {
  const users = programs ?? obj.programs.filter((p) => programCode(obj, p).some((s) => s.name === secName));
  const out = new Map<number, WindowPre>();
  for (const p of users) {
    let prog;
    try {
      prog = linkProgram(obj, p);
    } catch {
      return null;
    }
    // Exact states: no liveness (dead registers forgotten) and no precision (imprecise pruning).
    const c = new Checker(prog, { liveness: false, precision: false });
    try {
      c.checkCfg();
      for (const fn of c.verificationRoots()) {
        c.explore(c.entryState(fn), prog.funcs[fn]!.start, (pc, st) => {
          const o = prog.origin[pc];
          if (o && o.section === secName) {
            const pre = withoutNullable(pointersOnly(preFromSafety(st)), st);
            const old = out.get(o.index);
            out.set(o.index, old ? joinPre(old, pre) : pre);
          }
          return false;
        });
      }
    } catch (e) {
      if (e instanceof Unsafe) return null;
      throw e;
    }
  }
  return out;
}

/**
 * A pointer that may still be NULL (a helper's `*_or_null` result before its check, e.g.
 * bpf_ringbuf_reserve's) is no region: preFromSafety maps PTR_TO_MEM_OR_NULL to non-null memory,
 * which would let a window drop the null check. Such registers get no fact.
 */
function withoutNullable(pre: WindowPre, st: State): WindowPre {
  const regs = st.frames[st.frames.length - 1]!.regs;
  const out: NonNullable<WindowPre['regs']> = {};
  for (const [r, f] of Object.entries(pre.regs ?? {})) if (f && !regs[Number(r)]?.nul) out[Number(r)] = f;
  return { ...pre, regs: out };
}

/** The pointer facts of a precondition (regions, offsets, packet range); no scalars, no stack contents. */
function pointersOnly(pre: WindowPre): WindowPre {
  const regs: NonNullable<WindowPre['regs']> = {};
  for (const [r, f] of Object.entries(pre.regs ?? {})) if (f && f.kind !== 'scalar' && f.kind !== 'unknown') regs[Number(r)] = f;
  return { regs, ...(pre.packetMinLen !== undefined ? { packetMinLen: pre.packetMinLen } : {}) };
}
