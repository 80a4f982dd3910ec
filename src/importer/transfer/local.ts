/** Transfer `local`: a disk image in a local file (the `cdi` command) is validated and converted where it is. */
import { ErrorKind, ImportError } from '../errors.ts';
import type { Transfer } from './context.ts';
import { convertInto, prescreenContent, validateAt } from './convert.ts';

export const localTransfer: Transfer = async (ctx) => {
  const { plan, info, content, tap, progress } = ctx;
  prescreenContent(ctx);
  const file = info.localPath;
  if (!file) throw new ImportError(ErrorKind.Internal, 'the local path needs a source with a local file');
  // A checksum still needs every byte read once.
  if (tap) {
    for await (const _ of content.stream) void _;
    tap.verify();
  } else content.stream.destroy();
  progress.restart();
  const loc = { file };
  const facts = await validateAt(ctx, loc, info.size);
  return await convertInto(ctx, loc, facts, { path: plan.path, track: true });
};
