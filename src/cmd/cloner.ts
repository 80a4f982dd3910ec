/** The clone source pod's entrypoint (pod <target-uid>-source-pod); everything comes from env vars: src/cloner/pod.ts. */
import { runClonerPod } from '../cloner/pod.ts';

process.exitCode = await runClonerPod(process.env);
