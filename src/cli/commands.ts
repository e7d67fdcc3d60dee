// Registry of CLI commands; each module owns one command.
import type { Command } from 'commander';
import { register as relink } from './relink.js';
import { register as cc } from './cc.js';

export const commands: ((program: Command) => void)[] = [
  relink,
  cc,
];
