import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { Logger } from '@ls/core';
import { splitCommand } from './shell-words.js';

/** Exit code of a process stopped by a second signal, without a final sync (128 + SIGINT, as shells report it). */
export const FORCED_EXIT_CODE = 130;
/**
 * Time from the first stop signal to a forced exit (code 1) when the shutdown has not finished by
 * then: supervisors such as Kubernetes and systemd kill after 10 s, and a clean exit 1 with a log
 * line beats a SIGKILL that says nothing.
 */
export const SHUTDOWN_DEADLINE_MS = 9_500;
/** Longest time the final sync may take after a stop signal. */
export const FINAL_SYNC_DEADLINE_MS = 8_500;
/** Time kept between the end of the final sync's budget and the forced exit, to log and close. */
export const FINAL_SYNC_MARGIN_MS = 1_000;
/** Time the exec child has to exit after the stop signal is forwarded to it, before it is sent SIGKILL. */
export const CHILD_STOP_GRACE_MS = 3_000;

/**
 * Signals that stop a process that replicates until stopped, with a final sync. SIGHUP too: a
 * closed terminal or a dropped SSH session would otherwise end it without one (Node's default).
 */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const satisfies readonly NodeJS.Signals[];

/** The first stop signal (STOP_SIGNALS) of a process that replicates until stopped. */
export interface StopSignals {
  /** Resolves with the first stop signal received. */
  readonly stopped: Promise<NodeJS.Signals>;
  /** True once a stop signal arrived: the caller must not start anything new (such as the exec child). */
  readonly stopping: boolean;
  /**
   * Returns a signal that aborts the final sync FINAL_SYNC_MARGIN_MS before the forced exit, and
   * FINAL_SYNC_DEADLINE_MS from now at the latest (what the exec child took is no longer available).
   */
  finalSyncSignal(): AbortSignal;
  /** Registers the exec child, so a forced exit (second signal, deadline) kills it instead of leaving it running. */
  adopt(child: ChildProcess): void;
  /**
   * Removes the signal handlers. A shutdown deadline already running stays armed (its timer does
   * not keep the process alive), so whatever still runs after the caller returns cannot hold the
   * process past it.
   */
  dispose(): void;
}

function kill(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
}

/**
 * Installs handlers for STOP_SIGNALS: the first signal resolves `stopped` (the caller then makes
 * its final sync) and arms a deadline that exits with code 1 after `deadlineMs` (default
 * SHUTDOWN_DEADLINE_MS); a second signal exits at once with FORCED_EXIT_CODE. Either forced exit
 * first sends SIGKILL to the adopted exec child. Install it before opening databases, so a signal
 * that arrives while they open stops right after.
 */
export function handleStopSignals(logger: Logger, options: { deadlineMs?: number } = {}): StopSignals {
  const deadlineMs = options.deadlineMs ?? SHUTDOWN_DEADLINE_MS;
  let count = 0;
  let deadline = Infinity;
  let child: ChildProcess | undefined;
  let resolveStopped!: (sig: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((res) => (resolveStopped = res));
  const forceExit = (code: number): never => {
    kill(child, 'SIGKILL');
    process.exit(code);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) {
      logger.warn('second signal, exiting without a final sync', { signal: sig });
      forceExit(FORCED_EXIT_CODE);
    }
    logger.info('signal received, stopping', { signal: sig });
    deadline = Date.now() + deadlineMs;
    setTimeout(() => {
      logger.error('shutdown did not finish in time, exiting without completing the final sync', { deadlineMs });
      forceExit(1);
    }, deadlineMs).unref();
    resolveStopped(sig);
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  return {
    stopped,
    get stopping() {
      return count > 0;
    },
    finalSyncSignal() {
      const left = deadline === Infinity ? Infinity : deadline - Date.now() - FINAL_SYNC_MARGIN_MS;
      return AbortSignal.timeout(Math.max(0, Math.min(FINAL_SYNC_DEADLINE_MS, left)));
    },
    adopt(c) {
      child = c;
    },
    dispose() {
      for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    },
  };
}

/** A child process run with `exec`, as `lstream replicate -exec` and `lstream-server` do. */
export interface ExecChild {
  readonly child: ChildProcess;
  /** Resolves with the child's exit code (128 + signal number when a signal ended it; 1 when it could not start). */
  readonly exited: Promise<number>;
}

/**
 * Starts `command` (split into words like a shell would, see `splitCommand`) as a child that
 * inherits stdin, stdout, stderr and the environment. A command that cannot start is logged and
 * reported as exit code 1. `shown` is how the command appears in logs (pass it redacted when the
 * line may hold credentials); default `command`. Throws InvalidArgumentError for a line that is not
 * a command.
 */
export function startExec(command: string, logger: Logger, shown: string = command): ExecChild {
  const [cmd, ...args] = splitCommand(command);
  const child = spawn(cmd!, args, { stdio: 'inherit' });
  const exited = new Promise<number>((res) => {
    child.on('exit', (code, signal) => res(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    child.on('error', (err) => {
      logger.error('cannot run the exec command', { exec: shown, error: String(err) });
      res(1);
    });
  });
  return { child, exited };
}

/** Why `waitUntilStopped` returned: a signal, or the exec child exited by itself. */
export type StopReason = { signal: NodeJS.Signals; childCode?: number } | { signal?: undefined; childCode: number };

/**
 * Keeps the process alive until a stop signal arrives or the exec child exits by itself (the
 * engine's timers and watchers do not hold it open). A signal is forwarded to a running child, and
 * the child's exit is awaited before this resolves, so the caller's final sync sees its last writes;
 * a child still running `graceMs` (default CHILD_STOP_GRACE_MS) later is sent SIGKILL, so it cannot
 * use up the shutdown deadline.
 */
export async function waitUntilStopped(stop: StopSignals, exec?: ExecChild, options: { graceMs?: number; logger?: Logger } = {}): Promise<StopReason> {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let grace: NodeJS.Timeout | undefined;
  try {
    if (exec) stop.adopt(exec.child);
    const never = new Promise<never>(() => undefined);
    const why = await Promise.race([stop.stopped, exec?.exited ?? never]);
    if (typeof why === 'number') return { childCode: why };
    if (!exec) return { signal: why };
    kill(exec.child, why);
    const graceMs = options.graceMs ?? CHILD_STOP_GRACE_MS;
    grace = setTimeout(() => {
      if (exec.child.exitCode !== null || exec.child.signalCode !== null) return;
      options.logger?.warn('the exec command did not exit after the stop signal, killing it', { signal: why, graceMs });
      kill(exec.child, 'SIGKILL');
    }, graceMs);
    return { signal: why, childCode: await exec.exited };
  } finally {
    clearTimeout(grace);
    clearInterval(keepAlive);
  }
}

/**
 * The rest of a replicating process's life, shared by `lstream replicate` and `lstream-server`:
 * starts the `exec` child (not when a stop signal arrived while the databases opened), waits for a
 * stop signal or the child's exit, runs `beforeClose`, then makes the final sync of `running` within
 * the shutdown deadline. Resolves with the exit code: 1 when the final sync did not complete, else
 * the exit code of a child that exited by itself (128 + signal number when a signal ended it), else 0.
 */
export async function superviseUntilStopped(
  running: { close(options: { signal?: AbortSignal }): Promise<void> },
  stop: StopSignals,
  options: { exec?: string | undefined; shownExec?: string; logger: Logger; beforeClose?: () => void },
): Promise<number> {
  const { exec, logger } = options;
  const child = exec !== undefined && exec.trim() !== '' && !stop.stopping ? startExec(exec, logger, options.shownExec ?? exec) : undefined;
  const why = await waitUntilStopped(stop, child, { logger });
  let code = 0;
  if (why.signal === undefined) {
    logger.info('subprocess exited, stopping', { code: why.childCode });
    // The app's own exit code, so a supervisor sees why it stopped (a failed final sync makes it 1).
    code = why.childCode;
  }
  options.beforeClose?.();
  try {
    await running.close({ signal: stop.finalSyncSignal() });
    logger.info('stopped after a final sync');
  } catch {
    // Each database's failure is logged where it happens (runDatabases), with its path.
    logger.error('stopped without a complete final sync');
    code = 1;
  }
  return code;
}
