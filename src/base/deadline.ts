/**
 * One deadline for one refresh: the lock wait, key generation, the API key source and both
 * gateway calls with their retries all draw on the same budget. Each layer is handed this object
 * instead of a number of seconds, so no layer can start a fresh timeout of its own and the sum
 * can never exceed what the user configured.
 */
export class Deadline {
  readonly at: number;
  /** Aborts at the deadline: for undici requests and child processes. */
  readonly signal: AbortSignal;

  /**
   * @param seconds the budget, as configured (config.ts bounds it, so timers cannot overflow)
   * @param short whether this is a shortened budget (the refresh margin's opportunity), whose
   *   expiry says nothing about the gateway
   * @param since when the budget began (ms since the epoch): by default now; `match` counts from
   *   when its hot path began to wait for another's refresh, if it did
   */
  constructor(
    readonly seconds: number,
    readonly short = false,
    since = Date.now(),
  ) {
    this.at = Math.round(since + seconds * 1000);
    this.signal = AbortSignal.timeout(Math.max(1, this.at - Date.now()));
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  get expired(): boolean {
    return this.remainingMs() === 0 || this.signal.aborted;
  }

  /** The budget as people read it: "10 s", "1.5 s". */
  toString(): string {
    return `${Number(this.seconds.toFixed(1))} s`;
  }
}
