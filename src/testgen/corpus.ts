// Running check-semantics over a directory of objects (the shared corpus), collecting what could not
// be tested and why. Used by the corpus tests.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { K2Error } from '../util/errors.js';
import { checkSemantics, type ProgramResult } from './diff.js';

/** Every .o under `root` (sorted) whose path relative to root passes `filter`. */
export function objectsUnder(root: string, filter: (rel: string) => boolean = () => true): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.o') && filter(p.slice(root.length + 1))) out.push(p);
    }
  };
  walk(root);
  return out;
}

export interface CorpusResult {
  programs: (ProgramResult & { file: string })[];
  /** "file program (type): why" for programs and objects that could not be tested here. */
  untestable: string[];
}

/** check-semantics on each object; objects that cannot be read or loaded here are listed, not thrown. */
export async function checkObjects(root: string, files: string[], inputs: number, seed = 1): Promise<CorpusResult> {
  const res: CorpusResult = { programs: [], untestable: [] };
  for (const f of files) {
    const rel = f.startsWith(root) ? f.slice(root.length + 1) : f;
    try {
      const r = await checkSemantics(f, { inputs, seed });
      for (const p of r.programs) res.programs.push({ ...p, file: rel });
      for (const u of r.untestable) res.untestable.push(`${rel} ${u.name} (${u.type}): ${u.why}`);
    } catch (e) {
      if (!(e instanceof K2Error) || !['input', 'unsupported'].includes(e.kind)) throw e;
      res.untestable.push(`${rel}: ${e.cause_}`);
    }
  }
  return res;
}
