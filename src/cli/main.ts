/** The `cdi` command. Subcommands are registered by the importer work (import, inspect). */
export async function main(argv: string[]): Promise<number> {
  await Promise.resolve();
  process.stderr.write(`cdi: not implemented yet: ${argv.join(' ')}\n`);
  return 2;
}
