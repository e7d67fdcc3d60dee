// `k2 server status|stop|start`: the compile server k2-clang and k2 build use (src/server).
import type { Command } from 'commander';
import { cacheRoot } from '../cache/store.js';
import { closeConnection, connectServer, placeFor, serverStatus, stopServer } from '../server/client.js';
import { K2Error } from '../util/errors.js';
import { action, printJson } from './common.js';

export function register(program: Command): void {
  const server = program
    .command('server')
    .description('the compile server k2-clang and k2 build use: status, stop, start')
    .addHelpText('after', `
k2-clang, k2 cc and k2 build send clang's objects to a background k2 process that keeps the
optimizer loaded and Z3 initialised in worker threads (up to one per core), instead of loading
them in every process. It starts on first use, listens on a Unix socket in a directory only you
can enter ($XDG_RUNTIME_DIR/k2, else the cache directory's server/), serves one k2 build and one
cache directory, and stops after 10 minutes without work (K2_SERVER_IDLE_MS). The output is the
same with or without it; if the server cannot start, crashes or does not answer, k2-clang
optimizes in its own process. Turn it off with K2_SERVER=0 or "server": false.`);
  server
    .command('status')
    .description('is a server running for this k2 and cache directory; what it has done')
    .option('--json', 'print JSON: { running, socket, lock, …the server\'s figures when it runs }')
    .addHelpText('after', '\nExit codes: 0 a server is running, 1 none is.')
    .action(action(async (o: { json?: boolean }) => {
      const root = cacheRoot();
      const s = await serverStatus(root);
      if (o.json) {
        const place = placeFor(root);
        printJson({ running: s !== null, socket: place.socket, lock: place.lock, ...(s ?? {}) });
        return s ? 0 : 1;
      }
      if (!s) {
        process.stdout.write(`no compile server running (socket ${placeFor(root).socket})\n`);
        return 1;
      }
      process.stdout.write([
        `pid               ${s.pid}`,
        `socket            ${s.socket}`,
        `cache directory   ${s.cacheRoot}`,
        `k2 build          ${s.k2}`,
        `up                ${s.uptimeSec} s (stops after ${s.idleShutdownSec} s without work)`,
        `CPU time          ${s.cpuSec.toFixed(2)} s`,
        `workers           ${s.workers} (${s.busy} busy, ${s.queued} objects waiting)`,
        `objects           ${s.served} optimized, ${s.failed} handed back to their client`,
      ].join('\n') + '\n');
      return 0;
    }));
  server
    .command('stop')
    .description('stop the server of this k2 and cache directory')
    .addHelpText('after', '\nExit codes: 0 stopped, or none was running.')
    .action(action(async () => {
      const stopped = await stopServer(cacheRoot());
      process.stdout.write(stopped ? 'compile server stopped\n' : 'no compile server running\n');
      return 0;
    }));
  server
    .command('start')
    .description('start the server now (k2-clang starts it on first use anyway) and wait until it listens')
    .addHelpText('after', '\nExit codes: 0 running, 5 it could not be started.')
    .action(action(async () => {
      const c = await connectServer(cacheRoot(), true);
      closeConnection(c);
      if ('fallback' in c) throw new K2Error('tool', `cannot start the compile server: ${c.fallback}`);
      const s = await serverStatus(cacheRoot());
      process.stdout.write(`compile server running (pid ${s?.pid ?? '?'}, ${s?.socket ?? placeFor(cacheRoot()).socket})\n`);
      return 0;
    }));
}
