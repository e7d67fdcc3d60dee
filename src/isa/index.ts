export * from './opcodes.js';
export * from './types.js';
export * from './codec.js';
export * from './disasm.js';
