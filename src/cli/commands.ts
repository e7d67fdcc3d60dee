// Registry of CLI commands; each module owns one command.
import type { Command } from 'commander';
import { register as verify } from './verify.js';
import { register as run } from './run.js';
import { register as relink } from './relink.js';
import { register as cc } from './cc.js';
import { register as dis } from './dis.js';
import { register as opt } from './opt.js';
import { register as checkSemantics } from './check-semantics.js';
import { register as difftest } from './difftest.js';
import { register as safety } from './safety.js';
import { register as equiv } from './equiv.js';
import { register as build } from './build.js';
import { register as cache } from './cache.js';
import { register as check } from './check.js';
import { register as repair } from './repair.js';
import { register as server } from './server.js';

export const commands: ((program: Command) => void)[] = [
  verify,
  run,
  dis,
  opt,
  relink,
  cc,
  checkSemantics,
  difftest,
  safety,
  equiv,
  check,
  build,
  cache,
  repair,
  server,
];
