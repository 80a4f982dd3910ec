/** The importer pod's entrypoint (image `cdi-importer`): everything comes from env vars; see src/importer/pod.ts. */
import { runPodImporter } from '../importer/pod.ts';

process.exitCode = await runPodImporter(process.env);
