// `cdi upload`'s flags (those of virtctl image-upload, plus kubectl's -n/--namespace and --kubeconfig). The
// implementation (src/cli/upload.ts, with the Kubernetes client) is loaded only when the command runs, so that
// `cdi import` and `cdi inspect` do not pay for loading it (about 1,200 modules).
import type { Command } from 'commander';
import type { UploadFlags } from './upload.ts';

export function uploadCommand(program: Command, setCode: (code: number) => void): void {
  program
    .command('upload')
    .description(
      'upload a local disk image (or archive) to a new or existing DataVolume or PVC, as virtctl image-upload',
    )
    .argument('<kind>', 'dv or pvc')
    .argument('<name>', 'the DataVolume or PVC')
    .option('--image-path <file>', 'the local disk image')
    .option('--archive-path <file>', 'a local tar archive to extract into the volume')
    .option('--size <size>', 'size of the DataVolume/PVC to create, e.g. 10Gi')
    .option('--storage-class <name>', 'storage class of the PVC')
    .option('--access-mode <mode>', 'access mode of the PVC (ReadWriteOnce, ReadWriteMany)')
    .option(
      '--volume-mode <mode>',
      'block or filesystem (default: the storage profile; filesystem for archives)',
    )
    .option('--no-create', 'do not create the DataVolume/PVC: it must exist')
    .option('--force-bind', 'bind the PVC now, ignoring WaitForFirstConsumer')
    .option('--insecure', 'do not verify the upload proxy certificate')
    .option(
      '--uploadproxy-url <url>',
      'the upload proxy (default: CDIConfig spec.uploadProxyURLOverride or status.uploadProxyURL)',
    )
    .option(
      '--uploadproxy-ca <file>',
      'CA certificate(s) of the upload proxy (default: CDIConfig status.uploadProxyCA, then the system CAs)',
    )
    .option('--wait-secs <n>', 'seconds to wait for the upload server to be ready', '300')
    .option('--retry <n>', 'attempts for transient upload errors', '5')
    .option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context, else default)')
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, else ~/.kube/config)')
    .option(
      '--checksum <algo:hex>',
      'md5|sha1|sha256|sha512 of the file; the upload server refuses other bytes',
    )
    .option('--no-resume', 'start again from the first byte after a broken connection')
    .option('--no-progress', 'no progress output')
    .action(async (kind: string, name: string, f: UploadFlags) => {
      const { runUpload } = await import('./upload.ts');
      setCode(await runUpload(kind, name, f));
    });
}
