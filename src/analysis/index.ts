export * from './defuse.js';
export * from './cfg.js';
export * from './consts.js';
export * from './bits.js';
