#!/usr/bin/env node
import { main } from '../dist/cli/main.js';
await main(process.argv);
// Z3's worker threads would keep the process alive; exit explicitly (stdout/stderr writes to files,
// pipes and terminals are synchronous on Linux, so nothing printed is lost).
process.exit(process.exitCode ?? 0);
