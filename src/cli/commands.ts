// Registry of CLI commands; each module owns one command.
import type { Command } from 'commander';
import { register as relink } from './relink.js';
import { register as cc } from './cc.js';
import { register as dis } from './dis.js';
import { register as verify } from './verify.js';
import { register as run } from './run.js';

export const commands: ((program: Command) => void)[] = [
  dis,
  relink,
  cc,
  verify,
  run,
];
