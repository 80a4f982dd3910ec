/** Shows a Progress: a redrawn bar on a terminal, plain lines (every 10% or 10 s) otherwise. */
import type { Progress } from '../importer/progress.ts';
import { humanSize } from '../importer/size.ts';

function duration(secs: number): string {
  const s = Math.ceil(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function showProgress(p: Progress, out: NodeJS.WriteStream, isTty: boolean): () => void {
  const started = Date.now();
  let lastDraw = 0;
  let lastLineAt = 0;
  let lastDecile = -1;
  let lastPhase = '';
  const draw = (final = false): void => {
    const now = Date.now();
    const f = p.fraction();
    const rate = p.done / Math.max(0.001, (now - started) / 1000);
    const eta =
      f !== undefined && f < 1 && rate > 0 && p.total ? ` ETA ${duration((p.total - p.done) / rate)},` : '';
    if (isTty) {
      if (!final && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const bar = f === undefined ? '?'.repeat(width) : '#'.repeat(Math.round(f * width)).padEnd(width, '.');
      const pct = f === undefined ? '  ?  ' : `${(f * 100).toFixed(1).padStart(5)}%`;
      out.write(
        `\r[${bar}] ${pct} ${humanSize(p.done)} read, ${humanSize(rate)}/s,${eta} ${p.phase}    ${final ? '\n' : ''}`,
      );
      return;
    }
    const decile = f === undefined ? -1 : Math.floor(f * 10);
    if (final || p.phase !== lastPhase || decile > lastDecile || now - lastLineAt > 10_000) {
      lastPhase = p.phase;
      lastDecile = Math.max(lastDecile, decile);
      lastLineAt = now;
      const pct = f === undefined ? 'n/a' : `${(f * 100).toFixed(1)}%`;
      out.write(
        `progress: ${pct} (${p.done > 0 ? `${humanSize(p.done)} read, ${humanSize(rate)}/s,${eta} ` : ''}${p.phase})\n`,
      );
    }
  };
  const onUpdate = (): void => draw();
  p.on('update', onUpdate);
  return () => {
    p.off('update', onUpdate);
    draw(true);
  };
}
