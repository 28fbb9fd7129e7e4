// Tool: records real libvirt RPC traffic as a fuzzing corpus. A tee in front of a libvirtd socket
// directory: for every socket in --backend-dir it listens on the same name in --listen-dir and
// forwards each connection both ways unchanged, splitting each direction into frames as it goes.
// Point clients (or the e2e tests, VIRTPROXYD_TEST_BACKEND_DIR=<listen-dir>) at the listen dir,
// then stop it (SIGINT/SIGTERM or --seconds) to write the corpus to --out:
//   client-frames.bin, backend-frames.bin  distinct frames per direction (by program, procedure,
//                                          type and status; a few small examples of each), concatenated
//   sessions/<n>.bin                       whole client-to-daemon streams of short sessions
// The total stays under --max-bytes. File descriptors passed over a socket are not carried.
//
//   node dist/tools/capture-frames.js --backend-dir /run/libvirt/backend --listen-dir /tmp/tee \
//        --out test/corpus [--seconds 600] [--max-bytes 600000]

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { FrameDecoder } from '../src/protocol/frame-decoder.js';
import { readHeader } from '../src/protocol/header.js';

/** Frames bigger than this are not kept as examples (stream data, big XML). */
const MAX_EXAMPLE = 16 * 1024;
const EXAMPLES_PER_KIND = 3;
const MAX_SESSION_BYTES = 24 * 1024;
const MAX_SESSIONS = 60;

interface Session {
  c2s: Buffer[];
  c2sBytes: number;
  truncated: boolean;
}

export class Recorder {
  private readonly kinds = new Map<string, Buffer[]>();
  readonly sessions: Session[] = [];
  frames = 0;

  /** Keeps up to a few distinct small examples of each kind of frame. */
  frame(direction: 'c2s' | 's2c', f: Buffer): void {
    this.frames++;
    if (f.length > MAX_EXAMPLE) return;
    const h = readHeader(f);
    const key = `${direction}/${h.prog}/${h.proc}/${h.type}/${h.status}`;
    const list = this.kinds.get(key) ?? [];
    if (list.length >= EXAMPLES_PER_KIND || list.some((x) => x.equals(f))) return;
    list.push(Buffer.from(f));
    this.kinds.set(key, list);
  }

  newSession(): Session {
    const s: Session = { c2s: [], c2sBytes: 0, truncated: false };
    this.sessions.push(s);
    return s;
  }

  /**
   * Writes the corpus within `maxBytes`: up to 30% for each direction's frames (smallest first),
   * the rest for distinct sessions (smallest first; identical sessions are kept once).
   */
  write(out: string, maxBytes: number): { files: number; bytes: number } {
    fs.mkdirSync(path.join(out, 'sessions'), { recursive: true });
    let used = 0;
    let files = 0;
    for (const direction of ['c2s', 's2c'] as const) {
      let budget = Math.floor(maxBytes * 0.3);
      const frames = [...this.kinds]
        .filter(([k]) => k.startsWith(direction))
        .flatMap(([, v]) => v)
        .sort((a, b) => a.length - b.length);
      const kept: Buffer[] = [];
      for (const f of frames) {
        if (f.length > budget) break;
        kept.push(f);
        budget -= f.length;
        used += f.length;
      }
      fs.writeFileSync(
        path.join(out, direction === 'c2s' ? 'client-frames.bin' : 'backend-frames.bin'),
        Buffer.concat(kept),
      );
      files++;
    }
    // Sessions: greedily the one adding the most procedures not covered yet, so the few kept
    // between them exercise as much of the protocol as possible; identical ones only once.
    const seen = new Set<string>();
    const candidates = this.sessions
      .filter((s) => s.c2sBytes > 0 && !s.truncated)
      .map((s) => ({ bytes: Buffer.concat(s.c2s), kinds: new Set(s.c2s.map(kindOf)) }))
      .filter((c) => {
        const k = createHash('sha256').update(c.bytes).digest('hex');
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
    const covered = new Set<string>();
    const sessions: Buffer[] = [];
    while (candidates.length > 0 && sessions.length < MAX_SESSIONS) {
      let best = 0;
      let bestGain = -1;
      candidates.forEach((c, i) => {
        const gain = [...c.kinds].filter((k) => !covered.has(k)).length;
        const cur = candidates[best];
        if (
          gain > bestGain ||
          (gain === bestGain && cur !== undefined && c.bytes.length < cur.bytes.length)
        ) {
          best = i;
          bestGain = gain;
        }
      });
      const [pick] = candidates.splice(best, 1);
      if (pick === undefined) break;
      for (const k of pick.kinds) covered.add(k);
      sessions.push(pick.bytes);
    }
    let n = 0;
    for (const b of sessions) {
      if (used + b.length > maxBytes) continue;
      fs.writeFileSync(path.join(out, 'sessions', `${String(n++).padStart(3, '0')}.bin`), b);
      used += b.length;
      files++;
    }
    return { files, bytes: used };
  }
}

function kindOf(f: Buffer): string {
  const h = readHeader(f);
  return `${h.prog}/${h.proc}/${h.type}`;
}

/** Listens on `listenPath` and tees every connection to `backendPath`, recording frames. */
export function tee(listenPath: string, backendPath: string, rec: Recorder): net.Server {
  const server = net.createServer((client) => {
    const backend = net.connect({ path: backendPath });
    const session = rec.newSession();
    const c2s = new FrameDecoder(
      (f) => {
        rec.frame('c2s', f);
        if (session.c2sBytes + f.length <= MAX_SESSION_BYTES) {
          session.c2s.push(Buffer.from(f));
          session.c2sBytes += f.length;
        } else {
          session.truncated = true;
        }
      },
      () => undefined,
    );
    const s2c = new FrameDecoder(
      (f) => rec.frame('s2c', f),
      () => undefined,
    );
    client.on('data', (d: Buffer) => {
      c2s.push(d);
      if (!backend.write(d)) client.pause();
    });
    backend.on('data', (d: Buffer) => {
      s2c.push(d);
      if (!client.write(d)) backend.pause();
    });
    backend.on('drain', () => client.resume());
    client.on('drain', () => backend.resume());
    const end = (): void => {
      client.destroy();
      backend.destroy();
    };
    client.on('close', end);
    backend.on('close', end);
    client.on('error', end);
    backend.on('error', end);
  });
  fs.rmSync(listenPath, { force: true });
  server.listen(listenPath);
  return server;
}

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'backend-dir': { type: 'string', default: '/run/libvirt/backend' },
      'listen-dir': { type: 'string' },
      out: { type: 'string' },
      seconds: { type: 'string', default: '0' },
      'max-bytes': { type: 'string', default: '600000' },
    },
  });
  const backendDir = values['backend-dir'] as string;
  const listenDir = values['listen-dir'];
  const out = values.out;
  if (listenDir === undefined || out === undefined) {
    process.stderr.write(
      'usage: capture-frames --listen-dir DIR --out DIR [--backend-dir DIR] [--seconds N] [--max-bytes N]\n',
    );
    process.exit(2);
  }
  fs.mkdirSync(listenDir, { recursive: true });
  const rec = new Recorder();
  const servers: net.Server[] = [];
  for (const name of fs.readdirSync(backendDir)) {
    const target = path.join(backendDir, name);
    if (!isSocket(target)) continue;
    servers.push(tee(path.join(listenDir, name), target, rec));
  }
  process.stdout.write(`capture-frames: teeing ${servers.length} sockets of ${backendDir} in ${listenDir}\n`);
  const finish = (): void => {
    for (const s of servers) s.close();
    const r = rec.write(out, Number(values['max-bytes']));
    process.stdout.write(
      `capture-frames: ${rec.frames} frames in ${rec.sessions.length} sessions seen; wrote ${r.files} files, ${r.bytes} bytes to ${out}\n`,
    );
    process.exit(0);
  };
  process.on('SIGINT', finish);
  process.on('SIGTERM', finish);
  const seconds = Number(values.seconds);
  if (seconds > 0) setTimeout(finish, seconds * 1000);
}

if (process.argv[1] !== undefined && import.meta.url === `file://${path.resolve(process.argv[1])}`) {
  void main();
}
