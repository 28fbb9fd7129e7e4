// Protocol layer: shapes of the generated procedure tables (procedures.gen.ts).
// Kept apart so the generated file stays pure data.

export interface ProcedureInfo {
  readonly num: number;
  readonly name: string;
  /** `@priority: high` in libvirt's .x files. */
  readonly high: boolean;
  /** Stream the call creates: data flows backend→client ('read') or client→backend ('write'). */
  readonly stream: 'read' | 'write' | null;
  /** Event-only (MESSAGE) procedure: a client may not call it. */
  readonly event: boolean;
  /** Carries file descriptors in or out (CALL_WITH_FDS / REPLY_WITH_FDS). */
  readonly fds: boolean;
}

export interface ProgramInfo {
  readonly name: string;
  readonly program: number;
  readonly version: number;
  readonly procs: ReadonlyArray<ProcedureInfo | undefined>;
}
