#!/usr/bin/env node
// Thin launcher: Node 26 runs the TypeScript sources directly (type stripping). The compile cache halves start-up
// (0.16 s → 0.08 s measured), which matters for short imports.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
