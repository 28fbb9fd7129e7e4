// Daemon layer: the PID file, held with a write lock for the daemon's lifetime so a second
// instance on the same paths refuses to start (libvirt's virPidFileAcquire semantics).

import fs from 'node:fs';
import { CodedError } from '../protocol/coded-error.js';
import { native } from '../native/native.js';

export class PidFile {
  private constructor(
    readonly path: string,
    private fd: number,
  ) {}

  static acquire(path: string, pid = process.pid): PidFile {
    const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
    let locked: boolean;
    try {
      locked = native().lockFile(fd);
    } catch (e) {
      fs.closeSync(fd);
      throw new CodedError('EPIDFILE', `Failed to acquire pid file '${path}': ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (!locked) {
      fs.closeSync(fd);
      throw new CodedError(
        'EPIDFILE',
        `Failed to acquire pid file '${path}': Resource temporarily unavailable`,
      );
    }
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, String(pid), 0);
    return new PidFile(path, fd);
  }

  release(): void {
    if (this.fd < 0) return;
    try {
      fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
