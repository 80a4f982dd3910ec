// A minimal structured logger: one JSON line per entry on stderr. Components pass it down; tests pass silentLogger.

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
type Level = keyof typeof levels;

export function jsonLogger(base: Record<string, unknown> = {}, min: Level = 'info'): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (levels[level] < levels[min]) return;
    process.stderr.write(
      `${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields })}\n`,
    );
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (f) => jsonLogger({ ...base, ...f }, min),
  };
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
