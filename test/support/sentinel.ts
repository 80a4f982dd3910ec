/**
 * A host file that must never be read: a FIFO with a writer waiting on it. If anything opens the FIFO for reading,
 * the writer's open completes and it leaves `<fifo>.opened` behind. (A FIFO also means a reader would block, so a
 * test that regresses hangs into qemu-img's time bound instead of passing quietly.)
 * makeSocketSentinel() is the same for network-style names (`nbd:unix:…`, `nbd+unix:///?socket=…`): a unix socket
 * that records every connection.
 */
import { spawn, execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Sentinel {
  path: string;
  wasOpened(): Promise<boolean>;
  close(): void;
}

export async function makeSentinel(p: string): Promise<Sentinel> {
  await run('mkfifo', [p]);
  const child = spawn('sh', ['-c', 'exec 3>"$1"; : > "$1.opened"', 'sh', p], { stdio: 'ignore' });
  child.unref();
  return {
    path: p,
    wasOpened: async () => (await stat(`${p}.opened`).catch(() => undefined)) !== undefined,
    close: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export async function makeSocketSentinel(p: string): Promise<Sentinel> {
  let connected = false;
  const server = net.createServer((s) => {
    connected = true;
    s.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve());
  });
  server.unref();
  return {
    path: p,
    wasOpened: () => Promise.resolve(connected),
    close: () => {
      server.close();
    },
  };
}
