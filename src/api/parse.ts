// Parse at the edge: turn untyped objects (from the API server, files or HTTP bodies) into API types,
// or fail with one line that says which field is wrong.
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { DataVolume } from './datavolume.ts';
import { CDIConfig } from './cdiconfig.ts';
import { StorageProfile } from './storageprofile.ts';
import { CDI } from './cdi.ts';
import { DataSource } from './datasource.ts';
import { DataImportCron } from './dataimportcron.ts';
import { VolumeCloneSource, VolumeImportSource, VolumeUploadSource } from './populators.ts';
import { ObjectTransfer } from './objecttransfer.ts';
import { UploadTokenRequest } from './upload.ts';

export class ParseError extends Error {
  override name = 'ParseError';
}

export function makeParser<T extends TSchema>(kind: string, schema: T) {
  const validator = Compile(schema);
  return (value: unknown): Static<T> => {
    if (validator.Check(value)) return value;
    const where = describeObject(value);
    const problems = [...validator.Errors(value)]
      .filter((e) => e.keyword !== 'anyOf')
      .slice(0, 3)
      .map(
        (e) =>
          `${e.instancePath === '' ? '(root)' : e.instancePath.slice(1).replaceAll('/', '.')} ${e.message}`,
      );
    throw new ParseError(`invalid ${kind}${where}: ${problems.join('; ')}`);
  };
}

function describeObject(value: unknown): string {
  if (typeof value !== 'object' || value === null) return '';
  const meta = (value as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  if (typeof meta?.name !== 'string') return '';
  return typeof meta.namespace === 'string' ? ` ${meta.namespace}/${meta.name}` : ` ${meta.name}`;
}

export const parseDataVolume: (value: unknown) => DataVolume = makeParser('DataVolume', DataVolume);
export const parseCDIConfig: (value: unknown) => CDIConfig = makeParser('CDIConfig', CDIConfig);
export const parseStorageProfile: (value: unknown) => StorageProfile = makeParser(
  'StorageProfile',
  StorageProfile,
);
export const parseCDI: (value: unknown) => CDI = makeParser('CDI', CDI);
export const parseDataSource: (value: unknown) => DataSource = makeParser('DataSource', DataSource);
export const parseDataImportCron: (value: unknown) => DataImportCron = makeParser(
  'DataImportCron',
  DataImportCron,
);
export const parseVolumeImportSource: (value: unknown) => VolumeImportSource = makeParser(
  'VolumeImportSource',
  VolumeImportSource,
);
export const parseVolumeUploadSource: (value: unknown) => VolumeUploadSource = makeParser(
  'VolumeUploadSource',
  VolumeUploadSource,
);
export const parseVolumeCloneSource: (value: unknown) => VolumeCloneSource = makeParser(
  'VolumeCloneSource',
  VolumeCloneSource,
);
export const parseObjectTransfer: (value: unknown) => ObjectTransfer = makeParser(
  'ObjectTransfer',
  ObjectTransfer,
);
export const parseUploadTokenRequest: (value: unknown) => UploadTokenRequest = makeParser(
  'UploadTokenRequest',
  UploadTokenRequest,
);
