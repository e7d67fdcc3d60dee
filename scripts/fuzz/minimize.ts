// Shrinks a failing input while it still fails the same way: first truncation (keep a prefix),
// then cutting ranges out of the middle is not attempted (it shifts every offset); then zeroing ranges
// from large to small, which keeps the layout but removes everything the failure does not need.
export type StillFails = (bytes: Uint8Array) => Promise<boolean>;

export async function minimize(input: Uint8Array, stillFails: StillFails, maxTries = 1500): Promise<{ bytes: Uint8Array; tries: number }> {
  let best = input;
  let tries = 0;
  const attempt = async (b: Uint8Array): Promise<boolean> => {
    if (tries >= maxTries) return false;
    tries++;
    if (await stillFails(b)) {
      best = b;
      return true;
    }
    return false;
  };
  // 1. Shortest failing prefix, by halving the part cut off.
  for (let cut = best.length >> 1; cut >= 1 && tries < maxTries; ) {
    if (!(await attempt(best.slice(0, best.length - cut)))) cut >>= 1;
  }
  // 2. Zero ranges (not already zero), from half the file down to single bytes.
  for (let n = Math.max(1, best.length >> 1); n >= 1 && tries < maxTries; n >>= 1) {
    for (let at = 0; at < best.length && tries < maxTries; at += n) {
      const end = Math.min(best.length, at + n);
      if (best.subarray(at, end).every((x) => x === 0)) continue;
      const b = new Uint8Array(best);
      b.fill(0, at, end);
      await attempt(b);
    }
  }
  return { bytes: best, tries };
}
