// cdi-source-update-poller (upstream tools/cdi-source-update-poller), run by a DataImportCron's CronJob in CDI's
// namespace from the importer image: reads the manifest digest of a registry URL and annotates the DataImportCron
// with it (storage.import.sourceDesiredDigest, when it changed) and with the time of the poll
// (storage.import.lastCronTime). The controller does the rest.
//   -ns <namespace> -cron <name> -url docker://… [-certdir <dir of extra CA certificates>]
//   IMPORTER_ACCESS_KEY_ID / IMPORTER_SECRET_KEY   registry credentials (from the source's secretRef)
//   INSECURE_TLS=true                              the registry is in CDIConfig's insecureRegistries
//   KUBECONFIG or --kubeconfig                     out of cluster; otherwise the pod's service account (cdi-cronjob)
import { imageDigest } from '../importer/source/registry/digest.ts';
import { Ann } from '../api/constants.ts';
import { KubeClient, Resources, errorMessage, kubeTime } from '../kube/index.ts';
import { processKubeConfig } from './kubeconfig.ts';

const DesiredDigest = Ann.SourceDesiredDigest;
const LastCronTime = Ann.LastCronTime;

function flag(argv: string[], name: string): string | undefined {
  const i = argv.findIndex((a) => a === `-${name}` || a === `--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function poll(argv: string[], env: Record<string, string | undefined>): Promise<string> {
  const ns = flag(argv, 'ns');
  const cron = flag(argv, 'cron');
  const url = flag(argv, 'url');
  if (!ns || !cron || !url) throw new Error('-ns, -cron and -url are all required');
  const certDir = flag(argv, 'certdir');
  const user = env['IMPORTER_ACCESS_KEY_ID'];
  const password = env['IMPORTER_SECRET_KEY'];
  const digest = await imageDigest(url, {
    ...(user ? { user } : {}),
    ...(password ? { password } : {}),
    ...(certDir ? { caDirs: [certDir] } : {}),
    insecure: env['INSECURE_TLS'] === 'true',
    userAgent: 'cdi-source-update-poller',
  });
  const kube = new KubeClient(processKubeConfig(argv, env));
  const current = await kube.get<{ metadata?: { annotations?: Record<string, string> } }>(
    Resources.DataImportCron,
    cron,
    ns,
  );
  const annotations: Record<string, string> = {
    [LastCronTime]: kubeTime(new Date()),
  };
  if (current.metadata?.annotations?.[DesiredDigest] !== digest) annotations[DesiredDigest] = digest;
  await kube.mergePatch(Resources.DataImportCron, cron, { metadata: { annotations } }, { namespace: ns });
  return digest;
}

if (import.meta.main) {
  try {
    const digest = await poll(process.argv.slice(2), process.env);
    process.stdout.write(`Digest is ${digest}\n`);
  } catch (e) {
    process.stderr.write(`cdi-source-update-poller: error: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  }
}
