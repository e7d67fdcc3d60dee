#!/usr/bin/env node
// Drop-in replacement for `clang`: every argument goes to the real clang; BPF objects are optimized.
import { cc } from '../dist/cli/cc.js';
import { exitWhenFlushed } from './exit.js';
try {
  process.exitCode = await cc(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`k2-clang: ${e.message}\n`);
  process.exitCode = typeof e.exitCode === 'number' ? e.exitCode : 70;
}
exitWhenFlushed();
