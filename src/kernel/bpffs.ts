// Private bpffs directories for the bpftool backend (bpftool can only keep programs alive by pinning).
//
// Each directory is a fresh bpffs instance mounted on a new temporary directory, so nothing is ever
// pinned under the shared /sys/fs/bpf. Removing it (unmount + rmdir) drops every pin inside. Removal
// happens on `remove()`, and for directories still alive when the process ends: on normal exit, on
// an uncaught exception, and on SIGINT/SIGTERM/SIGHUP (the signal is re-raised afterwards so the exit
// status stays the usual one). When mounting is not permitted but /sys/fs/bpf is a bpffs, a uniquely
// named subdirectory of it is used instead (and removed the same way).

import { mkdtempSync, rmSync, rmdirSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { K2Error } from '../util/errors.js';

export interface PinDir {
  /** The directory pins go in. */
  readonly path: string;
  /** True while it exists. */
  readonly alive: boolean;
  /** Removes every pin and the directory itself. Idempotent, synchronous, never throws. */
  remove(): void;
}

/** Prefix of every directory k2 creates for pins; the creating process's pid follows it
 * (`k2-bpffs-<pid>-XXXXXX`), so leftovers can be traced to their process. */
export const PIN_PREFIX = 'k2-bpffs-';

const live = new Set<PinDirImpl>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let hooked = false;

function onExit(): void {
  for (const d of [...live]) d.remove();
}

function onSignal(sig: NodeJS.Signals): void {
  onExit();
  unhook();
  process.kill(process.pid, sig);
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function unhook(): void {
  if (!hooked) return;
  hooked = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

class PinDirImpl implements PinDir {
  private _alive = true;
  constructor(
    readonly path: string,
    private readonly mounted: boolean,
  ) {}
  get alive(): boolean {
    return this._alive;
  }
  remove(): void {
    if (!this._alive) return;
    this._alive = false;
    live.delete(this);
    if (live.size === 0) unhook();
    try {
      if (this.mounted) {
        spawnSync('umount', [this.path], { stdio: 'ignore' });
        try {
          rmdirSync(this.path);
        } catch {
          // still mounted (busy)? lazily detach, then try again
          spawnSync('umount', ['-l', this.path], { stdio: 'ignore' });
          rmSync(this.path, { recursive: true, force: true });
        }
      } else {
        rmSync(this.path, { recursive: true, force: true });
      }
    } catch {
      /* best effort: never throw from cleanup */
    }
  }
}

function isBpffs(path: string): boolean {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => {
        const [, mnt, fstype] = l.split(' ');
        return mnt === path && fstype === 'bpf';
      });
  } catch {
    return false;
  }
}

/** Creates a private pin directory on a bpffs. */
export function makePinDir(): PinDir {
  const dir = mkdtempSync(join(tmpdir(), `${PIN_PREFIX}${process.pid}-`));
  const r = spawnSync('mount', ['-t', 'bpf', 'bpf', dir], { encoding: 'utf8' });
  if (r.status === 0) {
    const d = new PinDirImpl(dir, true);
    live.add(d);
    hook();
    return d;
  }
  rmdirSync(dir);
  if (isBpffs('/sys/fs/bpf')) {
    const sub = join('/sys/fs/bpf', `${PIN_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(sub);
    const d = new PinDirImpl(sub, false);
    live.add(d);
    hook();
    return d;
  }
  throw new K2Error('bpf', `cannot get a private bpffs for bpftool pins: mount -t bpf failed (${(r.stderr || '').trim() || `status ${r.status}`}) and /sys/fs/bpf is not a bpffs`);
}

/** Number of k2 pin directories alive in this process (for tests). */
export const livePinDirs = (): number => live.size;

/** Entries of a pin directory (names of pinned programs or maps). */
export function listPins(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
