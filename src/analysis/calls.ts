// Which argument registers a call reads. A helper is a C function declared with BPF_CALL_n: it
// receives exactly its prototype's n arguments (r1..rn), whatever r(n+1)..r5 hold, so a write to
// r3 before `call bpf_map_lookup_elem` (two arguments) is dead. Every call still clobbers r1-r5.
// Counts from the kernel's bpf_func_proto definitions (kernel/bpf/helpers.c, net/core/filter.c,
// kernel/trace/bpf_trace.c) — every helper the safety model has a prototype for (src/safety/helpers.ts;
// test/analysis-liveness checks the two agree); trace_printk is BPF_CALL_5 (three variadic value
// arguments its prototype does not list). A helper not listed reads all five: only a wrong *low*
// count could be unsound.
import { CALL_HELPER, CALL_PSEUDO, CLASS, JMP, jmpOp, opClass } from '../isa/index.js';
import type { Insn } from '../isa/index.js';

export const HELPER_ARGS: Readonly<Record<number, number>> = {
  1: 2, 2: 4, 3: 2, 4: 3, 5: 0, 6: 5, 7: 0, 8: 0, 9: 5, 10: 5, 11: 5, 12: 3, 13: 3, 14: 0, 15: 0, 16: 2, 17: 1,
  18: 3, 19: 1, 20: 4, 21: 4, 22: 2, 23: 2, 24: 1, 25: 5, 26: 4, 27: 3, 28: 5, 29: 3, 30: 3, 31: 3, 32: 2, 33: 3,
  34: 1, 35: 0, 37: 2, 38: 3, 39: 2, 40: 2, 41: 1, 42: 0, 43: 3, 44: 2, 45: 3, 46: 1, 47: 1, 48: 2, 49: 5, 50: 4,
  51: 3, 52: 4, 53: 4, 54: 2, 55: 4, 56: 3, 57: 5, 59: 2, 60: 4, 61: 2, 62: 2, 63: 4, 64: 3, 65: 2, 66: 5, 67: 4,
  68: 5, 69: 4, 70: 4, 71: 4, 72: 4, 79: 1, 80: 0, 81: 2, 83: 2, 84: 5, 85: 5, 86: 1, 87: 3, 88: 2, 89: 2, 95: 1,
  96: 1, 97: 1, 99: 5, 101: 4, 102: 3, 103: 3, 104: 3, 105: 4, 106: 4, 109: 1, 112: 3, 113: 3, 114: 3, 115: 3,
  117: 1, 118: 0, 120: 4, 122: 1, 123: 1, 124: 3, 125: 0, 126: 5, 127: 3, 130: 4, 131: 3, 132: 2, 133: 2, 134: 2,
  135: 2, 141: 4, 151: 1, 152: 4, 155: 2, 156: 4, 157: 2, 158: 0, 160: 0, 164: 4, 173: 1, 174: 1, 175: 1, 177: 4,
  181: 4, 182: 3, 183: 3, 184: 2, 185: 1, 186: 0, 187: 1, 188: 1, 189: 4, 190: 4, 192: 3, 195: 3, 208: 0,
};

/** r1..r_n as a register bit set. */
export const argRegs = (n: number): number => ((1 << (n + 1)) - 1) & ~1;

const ALL_ARGS = 0b111110;

/** Registers (bit set) a call reads: its helper's arguments; r1-r5 for other calls unless `callee` knows better. */
export function callReads(insn: Insn, callee?: (insn: Insn) => number | undefined): number {
  if (insn.src === CALL_HELPER) {
    const n = HELPER_ARGS[insn.imm];
    return n === undefined ? ALL_ARGS : argRegs(n);
  }
  if (insn.src === CALL_PSEUDO && callee) {
    const r = callee(insn);
    if (r !== undefined) return r & ALL_ARGS;
  }
  return ALL_ARGS; // kfuncs and unresolved calls
}

export const isCall = (insn: Insn): boolean => opClass(insn.code) === CLASS.JMP && jmpOp(insn.code) === JMP.CALL;

/**
 * What a helper call reads and writes through pointer arguments: `reads` are [register, bytes]
 * read from where the register points; `writes` are [register, bytes] the helper always writes in
 * full (on error too: the probe_read family and skb_load_bytes zero the buffer, get_current_comm
 * pads it). A pointer argument listed in neither is read as far as it may reach (the caller's
 * default). Sizes are constants or the map's key/value size.
 */
export interface CallMemory {
  reads: [number, number][];
  writes: [number, number][];
}

/** A map's key and value sizes. */
export interface MapSizes {
  keySize: number;
  valueSize: number;
}

const FRAME_BYTES = 512;
const small = (v: bigint | undefined): number | null => (v !== undefined && v <= BigInt(FRAME_BYTES) ? Number(v) : null);

/**
 * The memory a call to helper `id` reads and writes, from the constants its size arguments hold
 * (`consts`: r0..r10 before the call) and the map its r1 points to (`map`); null when unknown.
 * Helper numbers and prototypes from include/uapi/linux/bpf.h and the kernel's bpf_func_proto
 * definitions (kernel/bpf/helpers.c, kernel/trace/bpf_trace.c, net/core/filter.c).
 */
export function helperMemory(id: number, consts: readonly (bigint | undefined)[], map: MapSizes | undefined): CallMemory | null {
  switch (id) {
    case 1: // map_lookup_elem(map, key)
    case 3: // map_delete_elem(map, key)
      return map ? { reads: [[2, map.keySize]], writes: [] } : null;
    case 2: // map_update_elem(map, key, value, flags)
      return map ? { reads: [[2, map.keySize], [3, map.valueSize]], writes: [] } : null;
    case 4: // probe_read(dst, size, src): dst zeroed on error
    case 112: // probe_read_user
    case 113: { // probe_read_kernel
      const n = small(consts[2]);
      return n === null ? null : { reads: [[3, n]], writes: [[1, n]] };
    }
    case 16: { // get_current_comm(buf, size): padded with zeros / zeroed on error
      const n = small(consts[2]);
      return n === null ? null : { reads: [], writes: [[1, n]] };
    }
    case 6: { // trace_printk(fmt, fmt_size, ...): r3-r5 may be %s strings (default for those)
      const n = small(consts[2]);
      return n === null ? null : { reads: [[1, n]], writes: [] };
    }
    case 25: { // perf_event_output(ctx, map, flags, data, size)
      const n = small(consts[5]);
      return n === null ? null : { reads: [[4, n]], writes: [] };
    }
    case 130: { // ringbuf_output(ringbuf, data, size, flags)
      const n = small(consts[3]);
      return n === null ? null : { reads: [[2, n]], writes: [] };
    }
    case 26: { // skb_load_bytes(skb, offset, to, len): `to` zeroed on error
      const n = small(consts[4]);
      return n === null ? null : { reads: [], writes: [[3, n]] };
    }
    default:
      return null;
  }
}

