// Protocol layer: the one local error class, carrying a string code and an optional cause
// (wire errors are values of type RemoteError instead; see remote-error.ts).

export class CodedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CodedError';
  }
}
