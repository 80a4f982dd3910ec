// Small shared types of the reconcilers; the loop itself is src/kube's Controller.
export type { Logger } from '../../kube/index.ts';
export { silentLogger, jsonLogger, splitKey } from '../../kube/index.ts';

export interface Result {
  requeueAfterMs?: number;
}
