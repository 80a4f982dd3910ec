// cdi-uploadproxy: the public upload endpoint (src/uploadproxy/main.ts).
import { startUploadProxy } from '../uploadproxy/main.ts';

try {
  const p = await startUploadProxy(process.argv.slice(2));
  const stop = (): void => void p.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (e) {
  process.stderr.write(`cdi-uploadproxy: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
