/**
 * nginx (Debian `nginx-light`) serving one directory on 127.0.0.1 for the bench: `sendfile on`, byte ranges (nginx
 * answers them by default for static files), no access log, one worker, config and pid in a temp dir. A server that
 * sends files from the page cache with sendfile costs nearly no CPU, so no baseline waits on the server (our Node
 * test server held `curl -o` back; issue 9).
 *
 *   const srv = await startNginx(dir);   // srv.url = 'http://127.0.0.1:<port>'; POST ${srv.url}/upload stores a body
 *   await srv.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { accepts, freePort } from '../test/support/servers.ts';
import { atExit } from './cleanup.ts';

export interface Nginx {
  url: string;
  close(): Promise<void>;
}

function config(root: string, dir: string, port: number): string {
  return `# written by bench/nginx.ts for one bench run
daemon off;
master_process on;
worker_processes 1;
# the bench runs as root and serves files under its home directory, which workers running as nobody cannot read
user root;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  types {}
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
    # the upload baseline: POST /upload is read to the end and stored in a file (client_body_in_file_only) before
    # the answer, as an upload server stores what it receives; the body is not passed on
    location = /upload {
      client_max_body_size 0;
      client_body_in_file_only clean;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_pass http://127.0.0.1:${port}/stored;
    }
    location = /stored { return 200 "stored\n"; }
  }
}
`;
}

/** Whether the process is alive (a zombie, killed but not yet reaped, is not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Starts nginx serving `root` (regular files, with ranges); throws with nginx's own message if it cannot start. */
export async function startNginx(root: string): Promise<Nginx> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cdi-bench-nginx-'));
  let child: ChildProcess | undefined;
  let err = '';
  const stop = (): void => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  const undo = atExit(() => {
    // interrupted: nginx may still be starting (creating its temp dirs), so kill its process group (master and
    // workers: a worker outlives a SIGKILLed master) and wait until the master is dead
    const pid = child?.pid;
    if (pid !== undefined && child?.exitCode === null) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
      for (const until = Date.now() + 500; Date.now() < until && running(pid););
    }
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    // a port that was free a moment ago can be taken meanwhile: try a few
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const conf = path.join(dir, 'nginx.conf');
      await writeFile(conf, config(root, dir, port));
      err = '';
      // its own process group, so that one kill reaches the workers too
      const c = spawn('nginx', ['-p', dir, '-c', conf], {
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      });
      child = c;
      c.stderr?.setEncoding('utf8');
      c.stderr?.on('data', (d: string) => (err += d));
      const exited = new Promise<void>((resolve) =>
        c.once('exit', (code, sig) => {
          err += ` (nginx exited: ${sig ?? `code ${code}`})`;
          resolve();
        }),
      );
      const failed = new Promise<'failed'>((resolve) => {
        c.once('error', (e) => {
          err += e.message;
          resolve('failed');
        });
        void exited.then(() => resolve('failed'));
      });
      for (const until = Date.now() + 10_000; Date.now() < until;) {
        const r = await Promise.race([accepts(port), failed]);
        if (r === 'failed') break;
        if (!r) await sleep(20);
        else
          return {
            url: `http://127.0.0.1:${port}`,
            async close(): Promise<void> {
              undo();
              stop();
              await exited;
              await rm(dir, { recursive: true, force: true });
            },
          };
      }
      stop();
      await exited;
      if (!/Address already in use/.test(err)) break;
    }
    throw new Error(
      `nginx did not start: ${err.trim() || 'no message'} (the bench installs nginx-light through hack/run.sh bench)`,
    );
  } catch (e) {
    undo();
    stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
