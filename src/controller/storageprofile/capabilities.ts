// Built-in knowledge of what a provisioner can do (upstream pkg/storagecapabilities), in preference order.
// Only the provisioners this project runs against are listed; an unknown provisioner gets no claim property sets
// and a Recognized=False condition, and a user fills the profile's spec.claimPropertySets.
import type { ClaimPropertySet, StorageClass } from '../shared/types.ts';

const rwoFile: ClaimPropertySet = { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' };
const rwoBlock: ClaimPropertySet = { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' };

const table: Record<string, ClaimPropertySet[]> = {
  // the Kubernetes CSI hostpath driver (Block and Filesystem, one node), under its upstream name and under the
  // name the local cluster registers it with (hack/cluster/lib/node.sh)
  'hostpath.csi.k8s.io': [rwoFile, rwoBlock],
  'hostpath.csi.cdi.dev': [rwoFile, rwoBlock],
  // upstream's entries for the other hostpath-style provisioners
  'kubevirt.io.hostpath-provisioner': [rwoFile],
  'kubevirt.io/hostpath-provisioner': [rwoFile],
  'k8s.io/minikube-hostpath': [rwoFile],
  'rancher.io/local-path': [rwoFile],
  'topolvm.io': [rwoBlock, rwoFile],
};

export function capabilitiesFor(sc: StorageClass): ClaimPropertySet[] | undefined {
  const c = table[sc.provisioner];
  return c ? structuredClone(c) : undefined;
}
