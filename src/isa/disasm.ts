// Instruction text in the syntax of `llvm-objdump -d` (LLVM 14, default cpu), and the layout of a whole
// disassembled section. Where LLVM 14 cannot print an instruction (cpu v4, BPF_ST, mod, 32-bit atomics
// other than add), the syntax of upstream LLVM's BPF backend (BPFInstrInfo.td) is used instead.
import { ALU, ATOMIC, CLASS, JMP, LD_IMM64, MODE, SIZE, SRC_X, aluOp, jmpOp, memMode, memSize, opClass, sizeBytes, srcBit } from './opcodes.js';
import { imm64, invalidReason, slotsOf } from './codec.js';
import type { Insn, InsnIndex, Slot } from './types.js';
import { K2Error } from '../util/errors.js';

export interface FormatOptions {
  /**
   * What llvm-objdump writes between `<` and `>` after a jump to `slot` (a slot index in the same
   * section; may lie outside it). See `sectionSymbolizer` for llvm-objdump's own choice.
   */
  symbolAt?: (slot: Slot) => string | undefined;
}

const ALU_OPS: Record<number, string> = {
  [ALU.ADD]: '+=', [ALU.SUB]: '-=', [ALU.MUL]: '*=', [ALU.DIV]: '/=', [ALU.OR]: '|=', [ALU.AND]: '&=',
  [ALU.LSH]: '<<=', [ALU.RSH]: '>>=', [ALU.MOD]: '%=', [ALU.XOR]: '^=', [ALU.ARSH]: 's>>=',
};

const JMP_OPS: Record<number, string> = {
  [JMP.JEQ]: '==', [JMP.JGT]: '>', [JMP.JGE]: '>=', [JMP.JSET]: '&', [JMP.JNE]: '!=', [JMP.JSGT]: 's>',
  [JMP.JSGE]: 's>=', [JMP.JLT]: '<', [JMP.JLE]: '<=', [JMP.JSLT]: 's<', [JMP.JSLE]: 's<=',
};

const ATOMIC_NAMES: Record<number, [string, string]> = {
  [ATOMIC.ADD]: ['+', 'add'], [ATOMIC.OR]: ['|', 'or'], [ATOMIC.AND]: ['&', 'and'], [ATOMIC.XOR]: ['^', 'xor'],
};

/** `+5`, `-3`, `+0`: a pc-relative displacement as LLVM prints branch targets. */
const rel = (n: number): string => (n >= 0 ? `+${n}` : `${n}`);

/** `r1 + 4`, `r10 - 8`: a base register and signed offset as LLVM prints memory operands. */
const memRef = (reg: number, off: number): string => (off >= 0 ? `r${reg} + ${off}` : `r${reg} - ${-off}`);

function withTarget(text: string, target: Slot, opts: FormatOptions): string {
  const sym = opts.symbolAt?.(target);
  return sym === undefined ? text : `${text} <${sym}>`;
}

function formatAlu(insn: Insn): string {
  const { code, dst, src, off, imm } = insn;
  const is64 = opClass(code) === CLASS.ALU64;
  const r = is64 ? 'r' : 'w';
  const op = aluOp(code);
  const x = srcBit(code) === SRC_X;
  const operand = x ? `${r}${src}` : `${imm}`;
  switch (op) {
    case ALU.NEG:
      return `${r}${dst} = -${r}${dst}`;
    case ALU.MOV:
      if (x && off !== 0) return `${r}${dst} = (s${off})${r}${src}`; // movsx (v4)
      return `${r}${dst} = ${operand}`;
    case ALU.END: {
      // ALU class: to-le (K) / to-be (X), printed on 64-bit registers; ALU64 class: bswap (v4).
      const name = is64 ? 'bswap' : x ? 'be' : 'le';
      return `r${dst} = ${name}${imm} r${dst}`;
    }
    case ALU.DIV:
    case ALU.MOD:
      return `${r}${dst} ${off === 1 ? 's' : ''}${ALU_OPS[op]} ${operand}`; // off=1: signed (v4)
    default:
      return `${r}${dst} ${ALU_OPS[op]} ${operand}`;
  }
}

function formatJmp(insn: Insn, slot: Slot, opts: FormatOptions): string {
  const { code, dst, src, off, imm } = insn;
  const is32 = opClass(code) === CLASS.JMP32;
  const op = jmpOp(code);
  switch (op) {
    case JMP.CALL:
      return `call ${imm}`; // helper id, pc-relative bpf-to-bpf call (src=1) or kfunc BTF id (src=2)
    case JMP.EXIT:
      return 'exit';
    case JMP.JA:
      if (is32) return withTarget(`gotol ${rel(imm)}`, slot + 1 + imm, opts); // v4 long jump
      return withTarget(`goto ${rel(off)}`, slot + 1 + off, opts);
    default: {
      const r = is32 ? 'w' : 'r';
      const rhs = srcBit(code) === SRC_X ? `${r}${src}` : `${imm}`;
      return withTarget(`if ${r}${dst} ${JMP_OPS[op]} ${rhs} goto ${rel(off)}`, slot + 1 + off, opts);
    }
  }
}

function formatAtomic(insn: Insn): string {
  const { code, dst, src, off, imm } = insn;
  const is64 = memSize(code) === SIZE.DW;
  const addr = memRef(dst, off);
  const ty = is64 ? 'u64' : 'u32';
  if (imm === ATOMIC.XCHG) return is64 ? `r${src} = xchg_64(${addr}, r${src})` : `w${src} = xchg32_32(${addr}, w${src})`;
  if (imm === ATOMIC.CMPXCHG) return is64 ? `r0 = cmpxchg_64(${addr}, r0, r${src})` : `w0 = cmpxchg32_32(${addr}, w0, w${src})`;
  const [sym, name] = ATOMIC_NAMES[imm & ~ATOMIC.FETCH]!;
  // LLVM 14 without alu32 prints the 32-bit add on r registers; the other 32-bit forms exist only
  // with alu32 and use w registers.
  const v = is64 || imm === ATOMIC.ADD ? `r${src}` : `w${src}`;
  if (imm & ATOMIC.FETCH) return `${v} = atomic_fetch_${name}((${ty} *)(${addr}), ${v})`;
  return `lock *(${ty} *)(${addr}) ${sym}= ${v}`;
}

/**
 * The text llvm-objdump prints for `insn` at slot index `slot` of its section (without the slot
 * number and raw bytes), e.g. `r0 = *(u32 *)(r1 + 4)` or `if r2 > r3 goto +5 <LBB0_2>`.
 */
export function formatInsn(insn: Insn, slot: Slot, opts: FormatOptions = {}): string {
  const bad = invalidReason(insn);
  if (bad) throw new K2Error('unsupported', `cannot disassemble opcode 0x${insn.code.toString(16).padStart(2, '0')} (${bad})`, { insn: slot });
  const { code, dst, src, off, imm } = insn;
  switch (opClass(code)) {
    case CLASS.ALU:
    case CLASS.ALU64:
      return formatAlu(insn);
    case CLASS.JMP:
    case CLASS.JMP32:
      return formatJmp(insn, slot, opts);
    case CLASS.LD: {
      if (code === LD_IMM64) {
        if (src === 0) return `r${dst} = ${BigInt.asIntN(64, imm64(insn))} ll`;
        return `ld_pseudo\tr${dst}, ${src}, ${imm >>> 0}`; // map fd/value, BTF id, func...: only the low imm
      }
      const size = `u${sizeBytes(code) * 8}`;
      if (memMode(code) === MODE.ABS) return `r0 = *(${size} *)skb[${imm}]`;
      return `r0 = *(${size} *)skb[r${src}]`; // IND: LLVM does not print imm
    }
    case CLASS.LDX: {
      const sign = memMode(code) === MODE.MEMSX ? 's' : 'u';
      return `r${dst} = *(${sign}${sizeBytes(code) * 8} *)(${memRef(src, off)})`;
    }
    case CLASS.ST:
      return `*(u${sizeBytes(code) * 8} *)(${memRef(dst, off)}) = ${imm}`;
    case CLASS.STX:
      if (memMode(code) === MODE.ATOMIC) return formatAtomic(insn);
      return `*(u${sizeBytes(code) * 8} *)(${memRef(dst, off)}) = r${src}`;
  }
  throw new K2Error('internal', `no text for opcode 0x${code.toString(16)}`, { insn: slot });
}

export interface DisasmLine {
  slot: Slot; // first 8-byte slot of the instruction in its section
  index: InsnIndex; // position in the instruction list
  insn: Insn;
  text: string;
}

/** One line per instruction, with the slot number llvm-objdump shows for it. */
export function disassembleSection(insns: readonly Insn[], opts: FormatOptions = {}): DisasmLine[] {
  const out: DisasmLine[] = [];
  let slot = 0;
  insns.forEach((insn, index) => {
    out.push({ slot, index, insn, text: formatInsn(insn, slot, opts) });
    slot += slotsOf(insn);
  });
  return out;
}

// ---- Symbols, as llvm-objdump 14 uses them -------------------------------------------------------

const STT_SECTION = 3;
const STT_FUNC = 2;

/** A symbol defined in the section being disassembled. */
export interface SectionSymbol {
  name: string;
  offset: number; // st_value: byte offset in the section
  type: number; // STT_*
}

const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The symbols llvm-objdump 14 knows for a section, in its order: unnamed and STT_SECTION symbols
 * dropped, stably sorted by (offset, name, type), and a dummy symbol named after the section at
 * offset 0 when no symbol starts there.
 */
export function objdumpSymbols(symbols: readonly SectionSymbol[], sectionName: string): SectionSymbol[] {
  const kept = symbols
    .filter((s) => s.name !== '' && s.type !== STT_SECTION)
    .map((s, i) => ({ s, i }))
    .sort((a, b) => a.s.offset - b.s.offset || compareNames(a.s.name, b.s.name) || a.s.type - b.s.type || a.i - b.i)
    .map(({ s }) => s);
  if (kept.length === 0 || kept[0]!.offset !== 0) kept.unshift({ name: sectionName, offset: 0, type: STT_FUNC });
  return kept;
}

/**
 * The `symbolAt` llvm-objdump 14 uses in a relocatable object: the last symbol (in `objdumpSymbols`
 * order) at or before the target, as `name` or `name+0x<hex byte distance>`.
 */
export function sectionSymbolizer(symbols: readonly SectionSymbol[], sectionName: string): (slot: Slot) => string | undefined {
  const sorted = objdumpSymbols(symbols, sectionName);
  return (slot: Slot) => {
    // The address arithmetic wraps like uint64_t: a target before the section start lies far after it.
    const target = slot >= 0 ? BigInt(slot * 8) : BigInt.asUintN(64, BigInt(slot) * 8n);
    const t = Number(target); // exact enough to search: symbol offsets are far below 2^53
    let lo = 0;
    let hi = sorted.length; // first index with offset > target
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.offset <= t) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return undefined;
    const sym = sorted[lo - 1]!;
    const disp = target - BigInt(sym.offset);
    return disp === 0n ? sym.name : `${sym.name}+0x${disp.toString(16)}`;
  };
}

// ---- Whole-section layout --------------------------------------------------------------------------

export interface RenderOptions {
  symbols?: readonly SectionSymbol[]; // symbols defined in this section (ELF symbol table order)
  rawBytes?: boolean; // show the instruction bytes (llvm-objdump's default); default true
  /** Overrides the instruction text (e.g. to annotate); receives llvm-objdump's own `symbolAt`. */
  text?: (insn: Insn, slot: Slot, opts: FormatOptions) => string;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

const slotBytes = (code: number, regs: number, off: number, imm: number): string =>
  `${HEX[code & 0xff]} ${HEX[regs & 0xff]} ${HEX[off & 0xff]} ${HEX[(off >> 8) & 0xff]} ` +
  `${HEX[imm & 0xff]} ${HEX[(imm >>> 8) & 0xff]} ${HEX[(imm >>> 16) & 0xff]} ${HEX[imm >>> 24]}`;

/** The bytes column: `b7 00 00 00 00 00 00 00` (16 bytes for ld_imm64), as `encodeInsns` lays them out. */
export function rawBytesOf(insn: Insn): string {
  const first = slotBytes(insn.code, ((insn.src & 0x0f) << 4) | (insn.dst & 0x0f), insn.off, insn.imm);
  return insn.code === LD_IMM64 ? `${first} ${slotBytes(0, 0, 0, insn.imm2 ?? 0)}` : first;
}

/** One instruction line as llvm-objdump prints it: `      12:\t<bytes>\t<text>`. */
export function formatLine(slot: Slot, insn: Insn, text: string, rawBytes = true): string {
  const head = String(slot).padStart(8, ' ') + ':';
  return rawBytes ? `${head}\t${rawBytesOf(insn)}\t${text}` : `${head}\t${text}`;
}

/**
 * A code section in llvm-objdump's `-d` layout: a blank line, `Disassembly of section <name>:`, then for
 * each symbol a blank line, `<16 hex digits> <symbol>:` and its instructions. Empty for an empty section.
 * The result ends with a newline.
 */
export function renderSection(name: string, insns: readonly Insn[], opts: RenderOptions = {}): string {
  if (insns.length === 0) return '';
  const symbols = objdumpSymbols(opts.symbols ?? [], name);
  const fmt: FormatOptions = { symbolAt: sectionSymbolizer(opts.symbols ?? [], name) };
  const text = opts.text ?? ((insn: Insn, slot: Slot, o: FormatOptions) => formatInsn(insn, slot, o));
  const size = insns.reduce((n, i) => n + slotsOf(i) * 8, 0);
  // A symbol gets a header when it starts before the next one and inside the section (llvm-objdump
  // skips all but the last of several symbols at one address).
  const headers = symbols.filter((s, i) => s.offset < Math.min(size, symbols[i + 1]?.offset ?? size));
  const lines = ['', `Disassembly of section ${name}:`];
  let h = 0;
  let slot = 0;
  for (const insn of insns) {
    while (h < headers.length && headers[h]!.offset <= slot * 8) {
      lines.push('', `${headers[h]!.offset.toString(16).padStart(16, '0')} <${headers[h]!.name}>:`);
      h++;
    }
    lines.push(formatLine(slot, insn, text(insn, slot, fmt), opts.rawBytes ?? true));
    slot += slotsOf(insn);
  }
  return lines.join('\n') + '\n';
}

/** The first lines llvm-objdump prints for an object file. */
export const renderFileHeader = (path: string): string => `\n${path}:\tfile format elf64-bpf\n`;
