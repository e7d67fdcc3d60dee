// Register reads and writes with the verifier's basic checks (check_reg_arg).
import { cur, RT, type Reg, type State } from './state.js';
import type { Env } from './env.js';

export function readReg(env: Env, st: State, r: number): Reg {
  if (r > 10) env.fail(`R${r} is invalid`);
  const reg = cur(st).regs[r]!;
  if (reg.t === RT.NOT_INIT) env.fail(`R${r} !read_ok`);
  return reg;
}

export function writeReg(env: Env, st: State, r: number, v: Reg): void {
  if (r === 10) env.fail('frame pointer is read only');
  if (r > 10) env.fail(`R${r} is invalid`);
  cur(st).regs[r] = v;
}
