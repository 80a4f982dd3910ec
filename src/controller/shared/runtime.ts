// Small shared types of the reconcilers; the loop itself is src/kube's Controller.
export type { Logger } from '../../kube/index.ts';
export { silentLogger, jsonLogger } from '../../kube/index.ts';

export interface Result {
  requeueAfterMs?: number;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
