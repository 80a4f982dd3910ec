/**
 * Synchronous clean-up that must happen however the bench ends: a normal exit, an uncaught error, or Ctrl-C /
 * SIGTERM / SIGHUP (after which the process exits by that signal, as it would have without the handler).
 *
 *   const undo = atExit(() => child.kill());   // …later, once cleaned up normally: undo()
 */
const tasks = new Set<() => void>();
let hooked = false;

function runAll(): void {
  for (const t of [...tasks]) {
    tasks.delete(t);
    try {
      t();
    } catch {
      // best effort: the other tasks still run
    }
  }
}

export function atExit(task: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', runAll);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.once(sig, () => {
        runAll();
        process.kill(process.pid, sig); // the listener is gone: the default action ends the process
      });
  }
  tasks.add(task);
  return () => {
    tasks.delete(task);
  };
}
