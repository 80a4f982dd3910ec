// What the reconcilers need to say something in `kubectl describe`: src/kube's EventRecorder satisfies it.
import type { KubeObject } from '../../kube/index.ts';

export interface Recorder {
  record(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}
