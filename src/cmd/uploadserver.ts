/** The upload server pod's entrypoint (pod cdi-upload-<pvc>); everything comes from env vars: src/uploadserver/pod.ts. */
import { runUploadServerPod } from '../uploadserver/pod.ts';

process.exitCode = await runUploadServerPod(process.env);
