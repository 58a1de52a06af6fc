/** The longest delay setTimeout honours (about 24.8 days); Node runs a longer one after 1 ms. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * A timer for delays of any length (a 30-day snapshot interval included), unref'd so it never keeps
 * the process alive. Node's own timers fire after 1 ms when given more than about 24.8 days, which
 * turned `snapshot-interval: 720h` into a snapshot every millisecond. Times are monotonic.
 */
export class LongTimer {
  #timer: NodeJS.Timeout | undefined;
  #cleared = false;

  private constructor() {}

  /** Runs `fn` once, `ms` from now. */
  static timeout(fn: () => void, ms: number): LongTimer {
    const t = new LongTimer();
    t.#arm(performance.now() + Math.max(0, ms), fn);
    return t;
  }

  /** Runs `fn` every `ms` (the next run is counted from the start of this one). */
  static interval(fn: () => void, ms: number): LongTimer {
    const t = new LongTimer();
    const every = Math.max(1, ms);
    const tick = () => {
      t.#arm(performance.now() + every, tick);
      fn();
    };
    t.#arm(performance.now() + every, tick);
    return t;
  }

  /** Stops the timer; `fn` does not run again. */
  clear(): void {
    this.#cleared = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(at: number, fn: () => void): void {
    if (this.#cleared) return;
    const wait = at - performance.now();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        // A delay longer than setTimeout honours is waited out in parts.
        if (at - performance.now() > 0) this.#arm(at, fn);
        else if (!this.#cleared) fn();
      },
      Math.min(Math.max(0, wait), MAX_DELAY_MS),
    );
    this.#timer.unref();
  }
}
