import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { Logger } from '@ls/core';
import { splitCommand } from './shell-words.js';

/** Exit code of a process stopped by a second signal, without a final sync (128 + SIGINT, as shells report it). */
export const FORCED_EXIT_CODE = 130;

/** The first SIGINT/SIGTERM of a process that replicates until stopped. */
export interface StopSignals {
  /** Resolves with the first SIGINT or SIGTERM received. */
  readonly stopped: Promise<NodeJS.Signals>;
  /** Removes the signal handlers. */
  dispose(): void;
}

/**
 * Installs SIGINT and SIGTERM handlers: the first signal resolves `stopped` (the caller then makes
 * its final sync), a second one exits the process at once with FORCED_EXIT_CODE. Install it before
 * opening databases, so a signal that arrives while they open stops right after.
 */
export function handleStopSignals(logger: Logger): StopSignals {
  let count = 0;
  let resolveStopped!: (sig: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((res) => (resolveStopped = res));
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) {
      logger.warn('second signal, exiting without a final sync', { signal: sig });
      process.exit(FORCED_EXIT_CODE);
    }
    logger.info('signal received, stopping', { signal: sig });
    resolveStopped(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopped,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
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
 * reported as exit code 1. Throws InvalidArgumentError for a line that is not a command.
 */
export function startExec(command: string, logger: Logger): ExecChild {
  const [cmd, ...args] = splitCommand(command);
  const child = spawn(cmd!, args, { stdio: 'inherit' });
  const exited = new Promise<number>((res) => {
    child.on('exit', (code, signal) => res(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    child.on('error', (err) => {
      logger.error('cannot run the exec command', { exec: command, error: String(err) });
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
 * the child's exit is awaited before this resolves, so the caller's final sync sees its last writes.
 */
export async function waitUntilStopped(stop: StopSignals, exec?: ExecChild): Promise<StopReason> {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    const never = new Promise<never>(() => undefined);
    const why = await Promise.race([stop.stopped, exec?.exited ?? never]);
    if (typeof why === 'number') return { childCode: why };
    if (!exec) return { signal: why };
    if (exec.child.exitCode === null && exec.child.signalCode === null) exec.child.kill(why);
    return { signal: why, childCode: await exec.exited };
  } finally {
    clearInterval(keepAlive);
  }
}
