export * from './types.js';
export { readElf, readElfFile, cstring } from './read.js';
export { writeElf, encodeSymbols, encodeRelocs } from './write.js';
export * from './btf.js';
