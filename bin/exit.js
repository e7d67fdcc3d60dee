// Ends the process once stdout and stderr are flushed: Z3's worker threads would keep it alive,
// and process.exit() with writes still queued on a pipe would cut the output short.
export function exitWhenFlushed() {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(process.exitCode ?? 0);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
