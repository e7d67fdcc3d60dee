import type { Command } from 'commander';
import { readObject, type BpfObject, type CodeSection } from '../ir/index.js';
import { disassembleSection, renderFileHeader, renderSection, sectionSymbolizer, type SectionSymbol } from '../isa/index.js';
import { symType } from '../elf/index.js';
import { action, printJson } from './common.js';

const symbolsOf = (obj: BpfObject, sec: CodeSection): SectionSymbol[] =>
  obj.elf.symbols.filter((s, i) => i > 0 && s.shndx === sec.shndx).map((s) => ({ name: s.name, offset: Number(s.value), type: symType(s) }));

export function disassembleObject(obj: BpfObject) {
  return {
    file: obj.file,
    sections: obj.code.map((sec) => {
      const lines = disassembleSection(sec.insns, { symbolAt: sectionSymbolizer(symbolsOf(obj, sec), sec.name) });
      return {
        name: sec.name,
        slots: sec.insns.reduce((n, i) => n + (i.imm2 === undefined ? 1 : 2), 0),
        insns: sec.insns.length,
        text: lines.map((l) => l.text),
      };
    }),
  };
}

export function register(program: Command): void {
  program
    .command('dis')
    .description('disassemble the code sections of a BPF object (llvm-objdump -d syntax)')
    .argument('<obj>', 'BPF object file')
    .option('--json', 'print {"file", "sections":[{"name", "slots", "insns", "text":[…]}]} (slots: 8-byte slots, ld_imm64 counts 2; insns: ld_imm64 counts 1)')
    .option('--no-raw', 'omit the instruction bytes column')
    .addHelpText('after', '\nExit codes: 0 ok, 2 bad input (not an ELF/BPF object, truncated, unknown opcode).')
    .action(action((file: string, opts: { json?: boolean; raw: boolean }) => {
      const obj = readObject(file);
      if (opts.json) return printJson(disassembleObject(obj));
      let out = renderFileHeader(file);
      for (const sec of obj.code) out += renderSection(sec.name, sec.insns, { symbols: symbolsOf(obj, sec), rawBytes: opts.raw });
      process.stdout.write(out);
    }));
}
