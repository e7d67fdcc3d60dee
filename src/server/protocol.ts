// The compile server's wire format: each message is a 4-byte big-endian length and that many bytes
// of UTF-8 JSON; object bytes travel base64-encoded. A client sends one request per connection and
// reads messages until a final one (result, error or status). The length is checked before
// anything is allocated.
import type { K2Config } from '../config/schema.js';
import type { ObjectResult } from '../cache/pipeline.js';

/** Largest message either side accepts (an object of 64 MiB, base64-encoded, with its report). */
export const MAX_MESSAGE = 96 * 1024 * 1024;

/** Bumped when messages change shape: a server that speaks another version is not used. */
export const PROTOCOL = 1;

export interface OptimizeRequest {
  type: 'optimize';
  protocol: number;
  k2: string; // the client's k2BuildId(): a server of another build refuses
  cacheRoot: string;
  config: K2Config;
  source: string | null;
  display: string;
  object: string; // clang's object, base64
  clangMs: number | null; // clang's CPU time for this object, ms (the build profile's search time follows it)
  progress: boolean; // send progress messages
}

export type Request = OptimizeRequest | { type: 'status'; protocol: number } | { type: 'stop'; protocol: number };

export interface ServerStatus {
  pid: number;
  k2: string;
  protocol: number;
  socket: string;
  cacheRoot: string;
  startedAt: string;
  uptimeSec: number;
  cpuSec: number; // user + system time of the whole server (every thread)
  workers: number;
  ready: number; // workers that finished warming up
  busy: number;
  queued: number;
  served: number;
  failed: number;
  idleShutdownSec: number;
}

export type Response =
  | { type: 'alive' } // sent every few seconds while a request waits or runs
  | { type: 'started' } // a worker took the object (time in the queue is over)
  | { type: 'progress'; msg: string }
  | { type: 'stderr'; text: string } // what the optimizer wrote to stderr for this object (k2: BUG: …)
  | { type: 'warning'; msg: string }
  | { type: 'result'; result: ObjectResult; object: string } // the output object, base64
  // refused: the pipeline refused the object (k2-clang keeps clang's output with this warning, as
  // in-process); any other kind: the client optimizes in its own process instead
  | { type: 'error'; kind: 'refused' | 'version' | 'failed' | 'bad-request' | 'stopping'; reason: string }
  | { type: 'status'; status: ServerStatus }
  | { type: 'stopping' };

export function encodeMessage(m: Request | Response): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  if (body.length > MAX_MESSAGE) throw new Error(`message of ${body.length} bytes is larger than ${MAX_MESSAGE}`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Collects stream chunks and hands out whole messages; throws on an oversized or non-JSON message. */
export class MessageReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.size < 4) break;
      let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = [buf];
      const len = buf.readUInt32BE(0);
      if (len > MAX_MESSAGE) throw new Error(`message length ${len} is larger than ${MAX_MESSAGE}`);
      if (this.size < 4 + len) break;
      out.push(JSON.parse(buf.subarray(4, 4 + len).toString('utf8')));
      buf = buf.subarray(4 + len);
      this.chunks = buf.length ? [buf] : [];
      this.size = buf.length;
    }
    return out;
  }
}
