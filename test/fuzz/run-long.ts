// The long fuzz run (npm run fuzz:long): every fuzz target with FUZZ_RUNS executions per property
// (default 60 000, about 1.2 million in all), then one total line of the figures the targets
// printed. Exits with the test run's status.

import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const runs = process.env['FUZZ_RUNS'] ?? '60000';
const dir = dirname(fileURLToPath(import.meta.url));
const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=3600000', dir],
  { env: { ...process.env, FUZZ_RUNS: runs }, stdio: ['ignore', 'pipe', 'inherit'] },
);
const total = { execs: 0, crashes: 0, hangs: 0, unbounded_allocs: 0 };
let partial = '';
child.stdout.setEncoding('utf8').on('data', (s: string) => {
  process.stdout.write(s);
  partial += s;
  const lines = partial.split('\n');
  partial = lines.pop() ?? '';
  for (const line of lines) {
    if (!line.startsWith('FUZZ ')) continue;
    for (const m of line.matchAll(/(execs|crashes|hangs|unbounded_allocs)=(\d+)/g)) {
      total[m[1] as keyof typeof total] += Number(m[2]);
    }
  }
});
const started = Date.now();
child.on('close', (code) => {
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  process.stdout.write(
    `FUZZ total (FUZZ_RUNS=${runs}, ${secs} s): execs=${total.execs} crashes=${total.crashes} ` +
      `hangs=${total.hangs} unbounded_allocs=${total.unbounded_allocs}\n`,
  );
  process.exit(code ?? 1);
});
