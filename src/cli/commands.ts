// Registry of CLI commands; each module owns one command.
import type { Command } from 'commander';

export const commands: ((program: Command) => void)[] = [];
