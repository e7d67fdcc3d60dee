export * from './types.js';
export { readElf, readElfFile, cstring } from './read.js';
export { writeElf, encodeSymbols, encodeRelocs, removeSections, encodeUleb128, decodeUleb128List } from './write.js';
export * from './btf.js';
