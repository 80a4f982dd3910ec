/**
 * Registry node pull's helper (upstream cdi-containerimage-server): `install <dir>` in the importer pod's init
 * container copies the server into the shared volume; see src/importer/image-server.ts.
 */
import { main } from '../importer/image-server.ts';

process.exitCode = await main(process.argv.slice(2));
