// Independent ground truth for tests: bpftool loads and runs programs in the kernel.
import { execa } from 'execa';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

export const BPFTOOL = existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool';

export interface Loaded {
  dir: string; // bpffs directory with one pin per program
  programs: string[];
  cleanup: () => void;
}

export async function bpfAvailable(): Promise<{ ok: boolean; reason: string }> {
  const r = await execa(BPFTOOL, ['prog', 'show'], { reject: false });
  if (r.exitCode === 0) return { ok: true, reason: '' };
  return { ok: false, reason: `bpftool prog show failed: ${String(r.stderr).trim()}` };
}

/** `bpftool prog loadall`; resolves to null (with the error text) when the kernel rejects it. */
export async function loadAll(obj: string, tag: string): Promise<{ loaded: Loaded | null; error: string }> {
  const dir = `/sys/fs/bpf/k2test_${tag}_${process.pid}_${Date.now()}`;
  rmSync(dir, { recursive: true, force: true });
  const r = await execa(BPFTOOL, ['prog', 'loadall', obj, dir], { reject: false });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  if (r.exitCode !== 0) {
    cleanup();
    return { loaded: null, error: String(r.stderr) };
  }
  return { loaded: { dir, programs: readdirSync(dir).sort(), cleanup }, error: '' };
}

export interface RunResult {
  retval: number;
  dataOut: string; // hex
}

export async function runPinned(pin: string, data: Uint8Array): Promise<RunResult> {
  const tmp = mkdtempSync(join(tmpdir(), 'k2run-'));
  try {
    const inFile = join(tmp, 'in');
    const outFile = join(tmp, 'out');
    writeFileSync(inFile, data);
    const r = await execa(BPFTOOL, ['prog', 'run', 'pinned', pin, 'data_in', inFile, 'data_out', outFile, 'repeat', '1'], { reject: false });
    if (r.exitCode !== 0) throw new Error(`bpftool prog run ${pin}: ${String(r.stderr).trim()}`);
    const m = /Return value:\s*(-?\d+)/.exec(String(r.stdout) + String(r.stderr));
    if (!m) throw new Error(`bpftool prog run ${pin}: no return value in ${r.stdout}`);
    return { retval: Number(m[1]), dataOut: existsSync(outFile) ? readFileSync(outFile).toString('hex') : '' };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A few packets that take different paths through typical parsers. */
export function samplePackets(): Uint8Array[] {
  const eth = (type: number) => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, type >> 8, type & 0xff];
  const ipv4 = (proto: number, payload: number[]) => {
    const len = 20 + payload.length;
    return [0x45, 0, len >> 8, len & 0xff, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, ...payload];
  };
  const tcp = [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0];
  const udp = [0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
  const ipv6 = [0x60, 0, 0, 0, 0, 16, 17, 64, ...new Array(16).fill(0xfe), ...new Array(16).fill(0x01), ...udp];
  const pad = (a: number[]) => new Uint8Array([...a, ...new Array(Math.max(0, 64 - a.length)).fill(0)]);
  return [
    pad([...eth(0x0800), ...ipv4(6, tcp)]),
    pad([...eth(0x0800), ...ipv4(17, udp)]),
    pad([...eth(0x0800), ...ipv4(1, [8, 0, 0, 0, 0, 1, 0, 1])]),
    pad([...eth(0x86dd), ...ipv6]),
    pad([...eth(0x8100), 0, 5, 0x08, 0x00, ...ipv4(6, tcp)]),
    pad([...eth(0x0806), 0, 1, 8, 0, 6, 4, 0, 1]),
    new Uint8Array([...eth(0x0800), 0x45, 0]), // truncated IPv4
    new Uint8Array(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff)),
  ];
}
