export * from './defuse.js';
export * from './cfg.js';
export * from './consts.js';
export * from './bits.js';
export * from './calls.js';
export * from './stack.js';
export * from './avail.js';
export * from './sources.js';
