// Where the compile server listens: a Unix socket in a directory only this user can enter (mode
// 0700): $XDG_RUNTIME_DIR/k2 when set, else <cache root>/server. One server per user, k2 build and
// cache root: the socket's name hashes both, so a rebuilt k2 never talks to an older k2's server.
// Sockets are named only by this module and created only by the server (src/server/main.ts).
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** sun_path holds 108 bytes with its NUL; longer paths fall back to a short private directory. */
const MAX_SOCKET_PATH = 100;

export interface ServerPlace {
  dir: string; // private directory holding the socket
  socket: string; // the Unix socket's path
  lock: string; // name in the abstract socket namespace the running server holds (released by the kernel when it dies; no NUL here: it goes on a command line)
  spawnMark: string; // file that says "a server is being started" (keeps parallel clients from each starting one)
}

const uid = (): number => process.getuid?.() ?? 0;

export function serverPlace(cacheRoot: string, buildId: string, env: NodeJS.ProcessEnv = process.env): ServerPlace {
  const id = createHash('sha256').update(`${cacheRoot}\0${buildId}`).digest('hex').slice(0, 20);
  let dir = env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'k2') : join(cacheRoot, 'server');
  if (join(dir, `${id}.sock`).length > MAX_SOCKET_PATH) dir = join(tmpdir(), `k2-${uid()}`);
  return { dir, socket: join(dir, `${id}.sock`), lock: `k2-server-${uid()}-${id}`, spawnMark: join(dir, `${id}.starting`) };
}

/**
 * Creates `dir` (mode 0700) or checks it: a real directory owned by this user that nobody else can
 * enter. Returns null when it is fine, else why it cannot hold the socket (the caller then works
 * without a server).
 */
export function privateDir(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    if (st.uid !== uid()) return `${dir} belongs to another user`;
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
    return null;
  } catch (e) {
    return `cannot use ${dir}: ${(e as Error).message}`;
  }
}
