// Registry node pull (`pullMethod: node`, upstream setRegistryNodeImportEnvVars and makeImporterPodSpec): the
// importer pod's `init` container (the importer image) copies our image server into the shared emptyDir; the
// `server` container runs the user's image with it, serving the file under /disk/ on localhost:8100; the importer
// reads it as an HTTP source once the ready file exists, and creates the done file when it is finished. The
// controller renders the pod from these (src/controller/import/pod.ts); src/importer/image-server.ts is the server,
// which carries the same defaults itself because it is copied alone into the user's image.

const sharedDir = '/shared';
const port = 8100;

/** The dynamic loader the server container starts, by the node's architecture (GOARCH names, as Kubernetes'). */
const loaders: Record<string, string> = {
  amd64: 'ld-linux-x86-64.so.2',
  arm64: 'ld-linux-aarch64.so.1',
  ppc64le: 'ld64.so.2',
  s390x: 'ld64.so.1',
};

export const NodePull = {
  method: 'node',
  sharedVolName: 'shared-volume',
  sharedDir,
  port,
  endpoint: `http://localhost:${port}/disk.img`,
  readyFile: `${sharedDir}/ready`,
  doneFile: `${sharedDir}/done`,
  /** The init container runs this in the importer image (src/cmd/containerimage-server.ts). */
  installCommand: ['/usr/local/bin/node', '/app/src/cmd/containerimage-server.ts', 'install', sharedDir],
} as const;

/** The server container's command: the copied loader runs the copied node on the copied server. */
export function nodePullServerCommand(
  architecture = 'amd64',
  dir: string = sharedDir,
  imageDir = '/disk',
): string[] {
  const loader = loaders[architecture] ?? loaders['amd64']!;
  return [
    `${dir}/lib/${loader}`,
    '--library-path',
    `${dir}/lib`,
    `${dir}/node`,
    `${dir}/server.mts`,
    '-p',
    String(port),
    '-image-dir',
    imageDir,
    '-ready-file',
    `${dir}/ready`,
    '-done-file',
    `${dir}/done`,
  ];
}

/**
 * The DataImportCron node-pull poller's container (upstream updateContainerImageDesiredDigest: `/shared/server -h`):
 * the copied server prints its usage and exits 0, so the kubelet has pulled the user's image and its container
 * status names the digest in imageID.
 */
export function nodePullProbeCommand(architecture = 'amd64', dir: string = sharedDir): string[] {
  return [...nodePullServerCommand(architecture, dir).slice(0, 5), '-h'];
}
