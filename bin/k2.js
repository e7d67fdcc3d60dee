#!/usr/bin/env node
import { main } from '../dist/cli/main.js';
import { exitWhenFlushed } from './exit.js';
await main(process.argv);
exitWhenFlushed();
