// The host's answers for helpers whose results depend on this machine and nothing a model can know:
// bpf_fib_lookup (routes, neighbours, forwarding settings) and the skb flow hash (keyed with a
// secret chosen at boot). Tiny probe programs call the helper with the given arguments under
// BPF_PROG_TEST_RUN and hand back what the kernel answered. Used by check-semantics (src/testgen) to
// give k2's interpreter those answers; the fds live until close().
import { libbpf, type LibbpfApi } from './libbpf.js';
import { testRunFd } from './fdops.js';

const PROG_TYPE = { SCHED_CLS: 3, XDP: 6 } as const;

/** One instruction, little-endian: code, dst:src, off, imm. */
function insn(code: number, dst: number, src: number, off: number, imm: number): number[] {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return [...b];
}

const MOV_REG = 0xbf, MOV_IMM = 0xb7, ADD_IMM = 0x07, LDX_W = 0x61, LDX_DW = 0x79, STX_DW = 0x7b, JGT_REG = 0x2d, CALL = 0x85, EXIT = 0x95;
const FAILED = 0x7fffffff; // the probe's own "packet too short" answer (no helper returns it)

/**
 * fib_lookup probe: params (64 bytes) and flags (u32) from the packet; returns the helper's result
 * and writes params back into the packet. `dataOff`/`endOff`: where the context keeps data/data_end.
 */
function fibProbe(dataOff: number, endOff: number): Buffer {
  const p: number[][] = [];
  p.push(insn(MOV_REG, 6, 1, 0, 0));
  p.push(insn(LDX_W, 7, 6, dataOff, 0), insn(LDX_W, 8, 6, endOff, 0));
  p.push(insn(MOV_REG, 2, 7, 0, 0), insn(ADD_IMM, 2, 0, 0, 68));
  const toFail = p.length;
  p.push([]); // if r2 > r8 goto fail (patched below)
  for (let i = 0; i < 8; i++) p.push(insn(LDX_DW, 3, 7, 8 * i, 0), insn(STX_DW, 10, 3, -64 + 8 * i, 0));
  p.push(insn(LDX_W, 4, 7, 64, 0));
  p.push(insn(MOV_REG, 1, 6, 0, 0), insn(MOV_REG, 2, 10, 0, 0), insn(ADD_IMM, 2, 0, 0, -64), insn(MOV_IMM, 3, 0, 0, 64));
  p.push(insn(CALL, 0, 0, 0, 69), insn(MOV_REG, 9, 0, 0, 0));
  p.push(insn(LDX_W, 7, 6, dataOff, 0), insn(LDX_W, 8, 6, endOff, 0));
  p.push(insn(MOV_REG, 2, 7, 0, 0), insn(ADD_IMM, 2, 0, 0, 64));
  const toOut = p.length;
  p.push([]); // if r2 > r8 goto out
  for (let i = 0; i < 8; i++) p.push(insn(LDX_DW, 3, 10, -64 + 8 * i, 0), insn(STX_DW, 7, 3, 8 * i, 0));
  const out = p.length;
  p.push(insn(MOV_REG, 0, 9, 0, 0), insn(EXIT, 0, 0, 0, 0));
  const fail = p.length;
  p.push(insn(MOV_IMM, 0, 0, 0, FAILED), insn(EXIT, 0, 0, 0, 0));
  p[toFail] = insn(JGT_REG, 2, 8, fail - toFail - 1, 0);
  p[toOut] = insn(JGT_REG, 2, 8, out - toOut - 1, 0);
  return Buffer.from(p.flat());
}

/** get_hash_recalc probe (tc): r0 = bpf_get_hash_recalc(skb). */
const hashProbe = (): Buffer => Buffer.from([...insn(CALL, 0, 0, 0, 34), ...insn(EXIT, 0, 0, 0, 0)]);

/** The host's answers (the shape of the interpreter's HelperOracle); null: unknown. */
export interface ClosableOracle {
  fibLookup(kind: 'xdp' | 'skb', params: Uint8Array, flags: number, pktLen: number): { ret: number; params: Uint8Array } | null;
  skbHash(frame: Uint8Array): number | null;
  close(): void;
}

/** The probes loaded (each lazily, once); null answers when one cannot be loaded or run here. */
export function openHelperOracle(): ClosableOracle {
  let api: LibbpfApi | null = null;
  const fds = new Map<string, number>();
  const load = (key: string, type: number, insns: Buffer): number => {
    const have = fds.get(key);
    if (have !== undefined) return have;
    api ??= libbpf();
    const fd = api.progLoadRaw(type, `k2_${key}`, 'GPL', insns, insns.length / 8);
    fds.set(key, fd);
    return fd;
  };
  const run = (key: string, type: number, insns: Buffer, progType: string, data: Uint8Array): { ret: number; out: Uint8Array } | null => {
    const fd = load(key, type, insns);
    if (fd < 0) return null;
    try {
      const r = testRunFd(api!, fd, progType, `k2_${key}`, { dataIn: data, dataSizeOut: data.length + 256 }, '<helper oracle>');
      return { ret: r.retval | 0, out: r.dataOut };
    } catch {
      return null; // the kernel refused this input (e.g. a frame too short for its protocol)
    }
  };
  return {
    fibLookup(kind, params, flags, pktLen) {
      const data = new Uint8Array(Math.max(68, pktLen));
      data.set(params.subarray(0, 64));
      new DataView(data.buffer).setUint32(64, flags >>> 0, true);
      const r = kind === 'xdp'
        ? run('fib_xdp', PROG_TYPE.XDP, fibProbe(0, 4), 'xdp', data)
        : run('fib_skb', PROG_TYPE.SCHED_CLS, fibProbe(76, 80), 'sched_cls', data);
      if (!r || r.ret === FAILED || r.out.length < 64) return null;
      return { ret: r.ret, params: r.out.slice(0, 64) };
    },
    skbHash(frame) {
      const r = run('hash', PROG_TYPE.SCHED_CLS, hashProbe(), 'sched_cls', frame);
      return r ? r.ret >>> 0 : null;
    },
    close() {
      for (const fd of fds.values()) if (fd >= 0) api!.close(fd);
      fds.clear();
    },
  };
}
