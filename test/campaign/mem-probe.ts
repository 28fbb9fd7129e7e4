// Campaign support, loaded into the proxy process under test with `node --expose-gc --import`: on
// SIGWINCH it collects garbage and writes the process's memory figures and open fd count to
// $VIRTPROXYD_PROBE_DIR/probe-<pid>.json, so a campaign can compare memory against a baseline
// without counting garbage. Never part of the product; src/ knows nothing of it. SIGWINCH because
// its default action is to do nothing (harmless if the probe is missing) and the daemon gives
// SIGUSR2 its own meaning (graceful restart).

import fs from 'node:fs';
import path from 'node:path';

const dir = process.env['VIRTPROXYD_PROBE_DIR'];
let seq = 0;

if (dir !== undefined && dir !== '') {
  process.on('SIGWINCH', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    // Twice: the first pass can leave objects whose finalizers the second one frees.
    gc?.();
    gc?.();
    const m = process.memoryUsage();
    const sample = {
      seq: ++seq,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      fds: fs.readdirSync('/proc/self/fd').length,
    };
    const file = path.join(dir, `probe-${process.pid}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(sample));
    fs.renameSync(`${file}.tmp`, file);
  });
}
