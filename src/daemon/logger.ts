// Daemon layer: the human-facing log, in libvirt's line format
// ("YYYY-MM-DD HH:MM:SS.mmm+0000: <pid>: <level> : <message>"), filtered by log_level/--verbose.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4 };
const LABEL: Record<LogLevel, string> = { debug: 'debug', info: 'info', warn: 'warning', error: 'error' };

export class Logger {
  /** Messages at this libvirt level or above are written (1 debug … 4 error). */
  threshold: number;

  constructor(
    threshold: number,
    private readonly write: (line: string) => void = (l) => process.stderr.write(l),
  ) {
    this.threshold = threshold;
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.threshold;
  }

  log(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    const ts = new Date().toISOString().replace('T', ' ').replace('Z', '+0000');
    this.write(`${ts}: ${process.pid}: ${LABEL[level]} : ${msg}\n`);
  }
}
