// cdi-apiserver: the aggregated upload token API and the admission webhooks (src/apiserver/main.ts).
import { startApiServer } from '../apiserver/main.ts';

try {
  const s = await startApiServer(process.argv.slice(2));
  const stop = (): void => void s.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (e) {
  process.stderr.write(`cdi-apiserver: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
