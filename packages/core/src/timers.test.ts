import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LongTimer } from './timers.js';

const DAY = 24 * 3600 * 1000;

describe('LongTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits out delays longer than setTimeout honours (a 30-day snapshot interval ran every millisecond)', () => {
    const once = vi.fn();
    LongTimer.timeout(once, 30 * DAY);
    vi.advanceTimersByTime(29 * DAY);
    expect(once).not.toHaveBeenCalled();
    vi.advanceTimersByTime(DAY);
    expect(once).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60 * DAY);
    expect(once).toHaveBeenCalledTimes(1);

    const every = vi.fn();
    const t = LongTimer.interval(every, 30 * DAY);
    vi.advanceTimersByTime(30 * DAY - 1);
    expect(every).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(every).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60 * DAY);
    expect(every).toHaveBeenCalledTimes(3);
    t.clear();
    vi.advanceTimersByTime(90 * DAY);
    expect(every).toHaveBeenCalledTimes(3);
  });

  it('runs short intervals on time, and stops when cleared from inside its own run', () => {
    let t: LongTimer | undefined;
    let runs = 0;
    t = LongTimer.interval(() => {
      if (++runs === 5) t!.clear();
    }, 1000);
    vi.advanceTimersByTime(4_999);
    expect(runs).toBe(4);
    vi.advanceTimersByTime(10_000);
    expect(runs).toBe(5);
  });
});
