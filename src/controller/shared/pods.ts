// What the worker pods share: the container security context.
import { Pod } from './constants.ts';

/** Every worker container: non-root (qemu's uid), no capabilities, no privilege escalation, seccomp RuntimeDefault. */
export function workerSecurityContext(): {
  allowPrivilegeEscalation: boolean;
  capabilities: { drop: string[] };
  runAsNonRoot: boolean;
  runAsUser: number;
  seccompProfile: { type: string };
} {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    runAsUser: Pod.qemuUid,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
