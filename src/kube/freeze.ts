// Objects in an informer cache are shared by every reader: they are frozen when they enter it, so a reconciler that
// modifies one in place fails at once (a TypeError in strict mode) instead of corrupting what the next reader sees.
// Code that needs a changed copy clones first (structuredClone or a spread).

export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}

/** Drops metadata.managedFields: the largest part of most objects, and nothing a controller reads. */
export function withoutManagedFields<T>(obj: T): T {
  const meta = (obj as { metadata?: { managedFields?: unknown } }).metadata;
  if (meta && 'managedFields' in meta) delete meta.managedFields;
  return obj;
}
