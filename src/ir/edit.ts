// List edits on a code section that keep the symbolic metadata where the kernel needs it:
// labels, func_info and the line_info of a subprogram start stay at the start of the code they named.
import { CLASS, JMP } from '../isa/index.js';
import { K2Error } from '../util/errors.js';
import type { CodeSection, IrInsn } from './types.js';

/** `ja +0`: a no-op the verifier accepts (and removes). */
export const nop = (): IrInsn => ({ code: CLASS.JMP | JMP.JA, dst: 0, src: 0, off: 0, imm: 0 });

/** Moves the position metadata (labels, func_info, line_info) from `from` to `to`. */
function movePositionMeta(from: IrInsn, to: IrInsn): void {
  if (from.labels?.length) to.labels = [...from.labels, ...(to.labels ?? [])];
  if (from.funcInfo) {
    if (to.funcInfo) throw new K2Error('internal', 'two functions would start at one instruction');
    to.funcInfo = from.funcInfo;
  }
  // The kernel wants at most one line_info per instruction, strictly increasing: keep `to`'s own if any.
  if (from.lines?.length && !to.lines?.length) to.lines = from.lines;
  delete from.labels;
  delete from.funcInfo;
  delete from.lines;
}

/** A copy of `sec` with `nop()` before every instruction (a test of the relinker). */
export function insertNops(sec: CodeSection): CodeSection {
  const insns: IrInsn[] = [];
  for (const insn of sec.insns) {
    const n = nop();
    const moved = { ...insn };
    movePositionMeta(moved, n);
    insns.push(n, moved);
  }
  return { ...sec, insns };
}

/**
 * Replaces insns[start, end) with `replacement`. The first replacement instruction (or, when the
 * replacement is empty, the instruction after the window) takes over the window's labels,
 * func_info and line_info. Pinned instructions and labels inside the window are an error: windows
 * are cut from single basic blocks around unpinned code.
 */
export function replaceWindow(sec: CodeSection, start: number, end: number, replacement: IrInsn[]): CodeSection {
  const old = sec.insns.slice(start, end);
  old.forEach((insn, k) => {
    if (insn.pinned) throw new K2Error('internal', `window replaces a pinned instruction (${insn.pinned})`, { section: sec.name, insn: start + k });
    if (k > 0 && insn.labels?.length) throw new K2Error('internal', 'window spans a jump target', { section: sec.name, insn: start + k });
  });
  // Replacement instructions may be copies of window instructions: they get no position metadata of
  // their own (the heir below receives the window's).
  const fresh: IrInsn[] = replacement.map(({ labels: _l, funcInfo: _f, lines: _n, ...rest }) => rest);
  const heir = fresh[0] ?? (sec.insns[end] ? { ...sec.insns[end]! } : undefined);
  const first = old[0] ? { ...old[0] } : undefined;
  if (first && heir) {
    movePositionMeta(first, heir);
    // Line info of later removed instructions: only if the heir has none yet.
    for (const o of old.slice(1)) if (o.lines?.length && !heir.lines?.length) heir.lines = o.lines;
  } else if (first && (first.labels?.length || first.funcInfo)) {
    throw new K2Error('internal', 'window at the end of a section removes a label', { section: sec.name, insn: start });
  }
  const insns = [...sec.insns.slice(0, start), ...fresh];
  if (fresh.length === 0 && heir) insns.push(heir, ...sec.insns.slice(end + 1));
  else insns.push(...sec.insns.slice(end));
  return { ...sec, insns };
}

/**
 * Replaces a whole region insns[start, end) that has control flow inside (a small function): like
 * replaceWindow, the first replacement instruction takes over the region's first labels, func_info
 * and line_info; the labels inside the region are the replacement's own (`labels` of its
 * instructions, which must include every label inside the region that anything outside it or a
 * symbol names — the caller's check). Pinned instructions (relocated loads) must be kept as they
 * are, in order. Line info of the region's other instructions is dropped.
 */
export function replaceRegion(sec: CodeSection, start: number, end: number, replacement: IrInsn[]): CodeSection {
  const old = sec.insns.slice(start, end);
  old.forEach((insn, k) => {
    if (k > 0 && insn.funcInfo) throw new K2Error('internal', 'region spans a function start', { section: sec.name, insn: start + k });
  });
  // pinned instructions (a relocated map load) stay: the replacement has them, the same, in order
  const pinnedKey = (i: IrInsn): string => `${i.code},${i.dst},${i.src},${i.off},${i.imm},${i.imm2 ?? ''},${i.pinned},${i.reloc?.sym ?? ''}/${i.reloc?.type ?? ''}`;
  if (old.filter((i) => i.pinned).map(pinnedKey).join(';') !== replacement.filter((i) => i.pinned).map(pinnedKey).join(';')) {
    throw new K2Error('internal', 'region replacement does not keep its pinned instructions', { section: sec.name, insn: start });
  }
  if (!replacement.length) throw new K2Error('internal', 'a region is never replaced by nothing', { section: sec.name, insn: start });
  const fresh: IrInsn[] = replacement.map(({ funcInfo: _f, lines: _n, ...rest }) => ({ ...rest, ...(rest.labels?.length ? { labels: [...rest.labels] } : {}) }));
  if (!fresh[0]!.labels?.length) delete fresh[0]!.labels;
  const first = { ...old[0]! };
  movePositionMeta(first, fresh[0]!);
  return { ...sec, insns: [...sec.insns.slice(0, start), ...fresh, ...sec.insns.slice(end)] };
}
