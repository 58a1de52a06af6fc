# Runs a command on a new pseudo-terminal as its controlling terminal, waits until the terminal
# shows READY_TEXT (or TIMEOUT seconds pass), then closes the terminal as a closed window or a
# dropped SSH session does: the kernel sends SIGHUP to the command. Prints the command's exit status
# as "exit N" or "signal N".
# Usage: python3 pty-hangup.py READY_TEXT TIMEOUT cmd [args...]
import os, pty, select, sys, time, fcntl, termios

ready, timeout, cmd = sys.argv[1].encode(), float(sys.argv[2]), sys.argv[3:]
master, slave = pty.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(master)
    os.close(slave)
    os.execvp(cmd[0], cmd)
os.close(slave)
seen, deadline = b'', time.time() + timeout
while ready not in seen and time.time() < deadline:
    if select.select([master], [], [], 0.1)[0]:
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
os.close(master)
_, status = os.waitpid(pid, 0)
print(f'exit {os.WEXITSTATUS(status)}' if os.WIFEXITED(status) else f'signal {os.WTERMSIG(status)}')
