// The safety stage's public door: a fast static check of BPF programs modelled on the Linux 6.x
// verifier. `safe: true` means k2 predicts the kernel accepts the program; when k2 is unsure it
// answers `safe: false` (sound with respect to the kernel: no false accepts is the design goal).
import type { BpfObject, IrInsn } from '../ir/types.js';
import { Checker, Unsafe, type CheckOptions, type CheckStats } from './check.js';
import { linkProgram, rawProgram, type MapInfo, type SafetyProgram } from './program.js';

export { Checker, Unsafe, type CheckOptions, type CheckStats } from './check.js';
export { linkProgram, rawProgram, rawMap, objectMaps, MAP_TYPE, type MapInfo, type SafetyProgram, type SafetyInsn } from './program.js';
export { WindowChecker, windowsOf, type WindowVerdict, type WindowSite } from './window.js';
export { coreValue, patchedMemOffset } from './core.js'; // CO-RE values, for the interpreter's kernel-compared runs

export interface SafetyVerdict {
  safe: boolean;
  reason: string | null;
  /** Instruction the reason is about: index in `section` (the program's own or a callee's). */
  insn: number | null;
  section: string | null;
  stats: CheckStats;
}

/** Checks one linked program: structure, then every path of the entry and of each global function. */
export function checkLinked(prog: SafetyProgram, opts: CheckOptions = {}): SafetyVerdict {
  const c = new Checker(prog, opts);
  try {
    c.checkCfg();
    for (const fn of c.verificationRoots()) c.explore(c.entryState(fn), prog.funcs[fn]!.start);
    c.checkStackDepth();
    return { safe: true, reason: null, insn: null, section: null, stats: c.stats };
  } catch (e) {
    if (!(e instanceof Unsafe)) throw e;
    const o = e.insn !== null ? prog.origin[e.insn] : undefined;
    return { safe: false, reason: e.reason, insn: o ? o.index : null, section: o ? o.section : null, stats: c.stats };
  }
}

/** Checks hand-built code (one section; ld_imm64 src=1 imm=i loads maps[i]). */
export function checkInsns(insns: IrInsn[], opts: { progType: string; maps?: MapInfo[]; gpl?: boolean } & CheckOptions): SafetyVerdict {
  return checkLinked(rawProgram(insns, opts), opts);
}

export interface ProgramSafety {
  section: string;
  name: string;
  safe: boolean;
  reason: string | null;
  insn: number | null;
}

/** Checks every program of an object. */
export function checkObject(obj: BpfObject, opts: CheckOptions = {}): ProgramSafety[] {
  return obj.programs.map((p) => {
    let v: SafetyVerdict;
    try {
      v = checkLinked(linkProgram(obj, p), opts);
    } catch (e) {
      if (e instanceof Unsafe) v = { safe: false, reason: e.reason, insn: null, section: null, stats: { steps: 0, states: 0, pruned: 0 } };
      else throw e;
    }
    const reason = v.reason && v.section && v.section !== p.section ? `${v.reason} (in ${v.section})` : v.reason;
    return { section: p.section, name: p.name, safe: v.safe, reason, insn: v.insn };
  });
}
