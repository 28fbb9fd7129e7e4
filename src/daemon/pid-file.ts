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
    // An exiting holder unlinks the file after we opened it but before we locked it; then the lock
    // is on an orphan inode, so check that the path still names what we locked, and retry if not.
    for (let attempt = 0; ; attempt++) {
      const f = PidFile.tryAcquire(path, pid);
      const onDisk = fs.statSync(path, { throwIfNoEntry: false });
      const held = fs.fstatSync(f.fd);
      if (onDisk !== undefined && onDisk.ino === held.ino && onDisk.dev === held.dev) return f;
      fs.closeSync(f.fd);
      if (attempt >= 10) {
        throw new CodedError('EPIDFILE', `Failed to acquire pid file '${path}': it keeps being replaced`);
      }
    }
  }

  private static tryAcquire(path: string, pid: number): PidFile {
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
    try {
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, String(pid), 0);
    } catch (e) {
      // Disk full or an I/O error: leave no empty or half-written PID file behind (we hold its lock,
      // so it is ours to remove), and say which file it was.
      fs.rmSync(path, { force: true });
      fs.closeSync(fd);
      throw new CodedError('EPIDFILE', `Failed to write pid file '${path}': ${(e as Error).message}`, {
        cause: e,
      });
    }
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
