import { closeSync, openSync } from 'node:fs';
import { isatty } from 'node:tty';

/**
 * What the apps do when standard output or error can no longer be written, and how they leave a
 * terminal that hung up.
 *
 * - A command that runs until stopped (`lstream replicate`, `lstream-server`) keeps replicating:
 *   its output is only its log, and losing the log (a closed terminal: EIO; a reader that exited:
 *   EPIPE; a full disk: ENOSPC) must not end replication or skip its final sync. Log lines are
 *   dropped from then on; there is nowhere left to say so.
 * - A one-shot command stops when its output cannot be written: quietly (exit 0) when the reader
 *   stopped early (`lstream wal URL | head -1`), else with one line on stderr and exit 1. Its
 *   diagnostics on stderr are dropped when they cannot be written; what it does is unchanged.
 *
 * A terminal that hung up (a closed window, a dropped SSH session) is let go of before exit: Node 20
 * restores the settings of each standard stream that was a terminal at start, and aborts (SIGABRT)
 * when that terminal is gone (nodejs/node#51519), which would turn a clean stop after a final sync
 * into a crash. A hung-up terminal no longer answers as one (isatty fails with EIO), so each stream
 * that was a terminal and is not any more is pointed at /dev/null, which Node leaves alone.
 */
let guarded = false;
const STDIO = [0, 1, 2];

/** Installs the standard-stream policy above for a command that runs until stopped, or a one-shot one (once per process). */
export function guardStdio(kind: 'until-stopped' | 'one-shot'): void {
  if (guarded) return;
  guarded = true;
  const onError = (which: 'stdout' | 'stderr') => (err: NodeJS.ErrnoException) => {
    // Diagnostics that cannot be written do not change what a command does.
    if (kind === 'until-stopped' || which === 'stderr') return;
    if (err.code === 'EPIPE') process.exit(0);
    try {
      process.stderr.write(`lstream: cannot write to standard output: ${err.message}\n`);
    } catch {
      // stderr is gone too: the exit code says it.
    }
    process.exit(1);
  };
  process.stdout.on('error', onError('stdout'));
  process.stderr.on('error', onError('stderr'));
  const wasTerminal = STDIO.map((fd) => isatty(fd));
  process.on('exit', () => {
    for (const fd of STDIO) if (wasTerminal[fd] && !isatty(fd)) releaseTerminal(fd);
  });
}

/** Points standard stream `fd`, a terminal that hung up, at /dev/null (see above). Best effort: the process is exiting. */
function releaseTerminal(fd: number): void {
  try {
    closeSync(fd);
    // The lowest free descriptor: the one just closed (those below it are open or were reopened).
    const reopened = openSync('/dev/null', 'r+');
    if (reopened !== fd) closeSync(reopened);
  } catch {
    // Closed already, or /dev/null missing: Node then finds the descriptor changed or gone.
  }
}
