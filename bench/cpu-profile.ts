// Benchmark support: reduces a V8 .cpuprofile (node --cpu-prof) to its heaviest functions by self
// time, so a slow run can be explained from the bench's own output.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFrame {
  frame: string;
  selfMs: number;
  /** Share of the sampled time outside '(idle)'. */
  percent: number;
}

export function topFrames(file: string, count: number): HotFrame[] {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const label = new Map<number, string>();
  for (const n of prof.nodes) {
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url ? ` ${basename(url)}:${lineNumber + 1}` : '';
    label.set(n.id, `${functionName || '(anonymous)'}${where}`);
  }
  const selfUs = new Map<string, number>();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  let busyUs = 0;
  for (let i = 0; i < samples.length; i++) {
    // A sample's delta is the time since the previous one; charge it to the later sample's frame.
    const key = label.get(samples[i] ?? -1) ?? '(unknown)';
    const d = deltas[i] ?? 0;
    selfUs.set(key, (selfUs.get(key) ?? 0) + d);
    if (key !== '(idle)') busyUs += d;
  }
  return [...selfUs.entries()]
    .filter(([k]) => k !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([frame, us]) => ({ frame, selfMs: us / 1000, percent: busyUs > 0 ? (100 * us) / busyUs : 0 }));
}
