// External tools: the real clang (k2 cc / k2-clang), llvm-objdump, bpftool. Side effects live here.
import { spawn } from 'node:child_process';
import { machine } from 'node:os';
import { basename } from 'node:path';
import { K2Error } from '../util/errors.js';

export const clangPath = (): string => process.env.K2_CLANG ?? 'clang';

// clang options whose value is the next argument (so it is not mistaken for an input file).
const TAKES_VALUE = new Set([
  '-o', '-I', '-D', '-U', '-include', '-imacros', '-idirafter', '-iquote', '-isystem', '-isysroot', '-target', '-x',
  '-Xclang', '-mllvm', '-MF', '-MT', '-MQ', '-arch', '-L', '-l', '-Xlinker', '-Xassembler', '-Xpreprocessor', '-working-directory',
  '-resource-dir', '-main-file-name', '-ivfsoverlay', '-iprefix', '-iwithprefix', '-iwithprefixbefore', '--sysroot', '-gcc-toolchain',
]);

export interface ClangInvocation {
  bpfObject: boolean; // compiles to BPF object file(s) we should optimize
  outputs: string[]; // object files it writes (when bpfObject; '-' = standard output)
  inputs: string[]; // source files (when bpfObject)
}

/** Decides from clang's arguments whether they compile C to BPF object files, and which files. */
export function classifyClangArgs(args: readonly string[]): ClangInvocation {
  let target: string | null = null;
  let compileOnly = false;
  let other = false; // -E, -S, -emit-llvm, -fsyntax-only, -M/-MM (no -MD), --version, -###, --help …
  let output: string | null = null;
  const inputs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-target' || a === '--target') target = args[++i] ?? null;
    else if (a.startsWith('--target=') || a.startsWith('-target=')) target = a.slice(a.indexOf('=') + 1);
    else if (a === '-c') compileOnly = true;
    else if (a === '-o') output = args[++i] ?? null;
    else if (a === '-o-') output = '-';
    else if (a.startsWith('-o') && a.length > 2) output = a.slice(2);
    else if (['-E', '-S', '-emit-llvm', '-fsyntax-only', '-M', '-MM', '-###', '--version', '-v', '--help', '-help', '-print-targets'].includes(a) || a.startsWith('-print-')) other = true;
    else if (TAKES_VALUE.has(a)) i++;
    else if (!a.startsWith('-') || a === '-') inputs.push(a);
  }
  const bpf = target !== null && /^bpf(el|eb)?(-|$)/.test(target);
  if (!bpf || !compileOnly || other || inputs.length === 0) return { bpfObject: false, outputs: [], inputs: [] };
  if (output !== null) return inputs.length === 1 ? { bpfObject: true, outputs: [output], inputs } : { bpfObject: false, outputs: [], inputs: [] };
  return { bpfObject: true, outputs: inputs.map((f) => basename(f).replace(/\.[^.]*$/, '') + '.o'), inputs };
}

/** Runs clang with exactly `args`, output streamed to ours. Returns clang's exit code. */
export async function runClang(args: readonly string[], opts: { cwd?: string; stdout?: 'inherit' | 'ignore' } = {}): Promise<number> {
  const clang = clangPath();
  // node:child_process rather than execa: k2-clang runs once per object, and execa costs ~0.1 s to load
  return new Promise((resolveCode, reject) => {
    const child = spawn(clang, args, { stdio: ['inherit', opts.stdout ?? 'inherit', 'inherit'], cwd: opts.cwd });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT'
        ? new K2Error('tool', 'clang not found (install it: apt-get install clang, or set K2_CLANG)', { file: clang })
        : new K2Error('tool', `cannot run clang: ${e.message}`, { file: clang }));
    });
    child.on('close', (code, signal) => resolveCode(code ?? (signal ? 128 + (({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1) : 1)));
  });
}

/** Runs a tool and returns its stdout; missing tool → K2Error('tool'). */
export async function runTool(tool: string, args: readonly string[]): Promise<string> {
  const { execa } = await import('execa');
  try {
    const r = await execa(tool, args, { reject: false });
    if (r.exitCode !== 0) throw new K2Error('tool', `${tool} failed (exit ${r.exitCode}): ${String(r.stderr).trim().split('\n').pop()}`);
    return String(r.stdout);
  } catch (e) {
    if (e instanceof K2Error) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new K2Error('tool', `${tool} not found`, { file: tool });
    throw new K2Error('tool', `cannot run ${tool}: ${(e as Error).message}`);
  }
}

/** `uname -m` and the kernel's name for the architecture (bpf_tracing.h's __TARGET_ARCH_*). */
export function targetArch(): { machine: string; kernelArch: string } {
  const m = machine();
  const kernel: Record<string, string> = { x86_64: 'x86', i686: 'x86', aarch64: 'arm64', armv7l: 'arm', s390x: 's390', ppc64le: 'powerpc', ppc64: 'powerpc', riscv64: 'riscv', loongarch64: 'loongarch', mips64: 'mips' };
  return { machine: m, kernelArch: kernel[m] ?? m };
}

/** clang flags `k2 build` compiles with before the configured cflags (as the fixtures' Makefile). */
export function defaultBpfFlags(): string[] {
  const { machine: m, kernelArch } = targetArch();
  return ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${m}-linux-gnu`, `-D__TARGET_ARCH_${kernelArch}`];
}
