// Turns a TypeBox schema into a structural OpenAPI v3 schema a CustomResourceDefinition accepts, and
// wraps it into the CRD object. The API server rejects `$id`, `$schema`, `$ref`, `const`,
// `patternProperties`, and any node without a `type` (unless it is int-or-string or preserve-unknown-fields).
import type { TSchema } from 'typebox';
import { Group } from './constants.ts';

export type JsonSchema = { [key: string]: unknown };

const dropped = new Set(['$id', '$schema', '$comment', 'examples']);

/** Returns a structural copy of `schema`; throws naming the JSON path of anything a CRD cannot hold. */
export function structuralize(schema: TSchema | JsonSchema, path = '$'): JsonSchema {
  // A JSON round trip drops TypeBox's symbol-keyed bookkeeping.
  const input = JSON.parse(JSON.stringify(schema)) as JsonSchema;
  return walk(input, path);
}

function walk(node: JsonSchema, path: string): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (dropped.has(key)) continue;
    if (key === '$ref' || key === '$defs' || key === 'definitions') {
      throw new Error(`${path}: ${key} is not allowed in a CRD schema; inline the referenced schema`);
    }
    out[key] = value;
  }
  if ('const' in out) {
    out.enum = [out.const];
    delete out.const;
  }
  // A union of string literals, as TypeBox writes Type.Union([Type.Literal(..)…]), becomes an enum.
  if (Array.isArray(out.anyOf) && out['x-kubernetes-int-or-string'] !== true) {
    const variants = out.anyOf as JsonSchema[];
    if (variants.every((v) => typeof v.const === 'string')) {
      out.type = 'string';
      out.enum = variants.map((v) => v.const);
      delete out.anyOf;
    } else {
      throw new Error(`${path}: anyOf is only allowed for int-or-string or string literal unions`);
    }
  }
  if (out.patternProperties !== undefined) {
    const patterns = Object.values(out.patternProperties as Record<string, JsonSchema>);
    if (patterns.length !== 1 || out.properties !== undefined) {
      throw new Error(`${path}: patternProperties must be a single catch-all record without properties`);
    }
    out.additionalProperties = patterns[0];
    delete out.patternProperties;
  }
  if (out.properties !== undefined && out.additionalProperties !== undefined) {
    if (out.additionalProperties === false) delete out.additionalProperties;
    else throw new Error(`${path}: properties and additionalProperties cannot both be set`);
  }
  if (
    out.type === undefined &&
    out['x-kubernetes-int-or-string'] !== true &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    throw new Error(`${path}: every node of a structural schema needs a type`);
  }
  if (out.properties !== undefined) {
    const props: JsonSchema = {};
    for (const [name, child] of Object.entries(out.properties as Record<string, JsonSchema>)) {
      props[name] = walk(child, `${path}.${name}`);
    }
    out.properties = props;
    if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  }
  if (out.items !== undefined) out.items = walk(out.items as JsonSchema, `${path}[]`);
  if (typeof out.additionalProperties === 'object' && out.additionalProperties !== null) {
    out.additionalProperties = walk(out.additionalProperties as JsonSchema, `${path}.*`);
  }
  return sortKeys(out);
}

/** Stable key order makes the generated YAML diff-friendly. */
function sortKeys(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const key of Object.keys(node).sort()) out[key] = node[key];
  return out;
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
}

export interface CrdDefinition {
  kind: string;
  plural: string;
  singular: string;
  scope: 'Namespaced' | 'Cluster';
  shortNames?: string[];
  categories?: string[];
  schema: TSchema;
  statusSubresource: boolean;
  printerColumns?: PrinterColumn[];
  /** Marks the version deprecated; the API server sends this text as a warning to every client. */
  deprecationWarning?: string;
}

/** The apiextensions.k8s.io/v1 CustomResourceDefinition for one kind, served and stored as v1beta1. */
export function buildCrd(def: CrdDefinition, version = 'v1beta1'): JsonSchema {
  const schema = structuralize(def.schema);
  const props = schema.properties as JsonSchema | undefined;
  // The API server owns metadata; a CRD may only say it is an object.
  if (props?.metadata !== undefined) props.metadata = { type: 'object' };
  const names: JsonSchema = {
    kind: def.kind,
    listKind: `${def.kind}List`,
    plural: def.plural,
    singular: def.singular,
  };
  if (def.shortNames) names.shortNames = def.shortNames;
  if (def.categories) names.categories = def.categories;
  const versionEntry: JsonSchema = {
    name: version,
    served: true,
    storage: true,
    schema: { openAPIV3Schema: schema },
  };
  if (def.printerColumns) versionEntry.additionalPrinterColumns = def.printerColumns;
  if (def.statusSubresource) versionEntry.subresources = { status: {} };
  if (def.deprecationWarning !== undefined) {
    versionEntry.deprecated = true;
    versionEntry.deprecationWarning = def.deprecationWarning;
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${Group}`,
      labels: { 'cdi.kubevirt.io': '' },
    },
    spec: {
      group: Group,
      names,
      scope: def.scope,
      versions: [versionEntry],
    },
  };
}
