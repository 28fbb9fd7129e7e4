// Transport layer: fds received on a connection, waiting for the frame that announced them.

import { native } from '../native/native.js';

export class FdQueue {
  private q: number[] = [];

  get length(): number {
    return this.q.length;
  }

  add(fds: readonly number[]): void {
    for (const fd of fds) this.q.push(fd);
  }

  /** The next n fds, or null when fewer are waiting. */
  take(n: number): number[] | null {
    if (this.q.length < n) return null;
    return this.q.splice(0, n);
  }

  /** Closes every fd still waiting (connection teardown, protocol errors). */
  closeAll(): void {
    closeFds(this.q);
    this.q = [];
  }
}

export function closeFds(fds: readonly number[]): void {
  if (fds.length === 0) return;
  const api = native();
  for (const fd of fds) {
    try {
      api.closeFd(fd);
    } catch {
      // already gone
    }
  }
}
