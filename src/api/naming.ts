// Upstream's resource naming (pkg/util/naming, library-go's naming.GetName): `<base>-<suffix>`, shortened with an
// FNV-1a hash when it would be too long, so that the names of worker pods, Services and Secrets derived from a PVC
// name are the ones upstream would pick (cdi-upload-<pvc>, importer-<pvc>, ...).

const DNS1123SubdomainMax = 253;
const DNS1035LabelMax = 63;

function fnv32a(s: string): string {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** library-go naming.GetName. */
export function getName(base: string, suffix: string, maxLength: number): string {
  if (maxLength <= 0) return '';
  const name = `${base}-${suffix}`;
  if (name.length <= maxLength) return name;
  const baseLength = maxLength - 10 - suffix.length;
  if (baseLength < 0) {
    const prefix = base.slice(0, Math.max(0, maxLength - 9));
    return `${prefix}-${fnv32a(name)}`.slice(0, maxLength);
  }
  return `${base.slice(0, baseLength)}-${fnv32a(base)}-${suffix}`;
}

/** naming.GetResourceName: a pod/Secret name. */
export function resourceName(base: string, suffix: string): string {
  return getName(base, suffix, DNS1123SubdomainMax);
}

/** naming.GetServiceNameFromResourceName: a DNS label (Services, label values). */
export function serviceName(resource: string): string {
  const base = resource.replaceAll('.', '-');
  return base.length <= DNS1035LabelMax ? base : getName(base, 'cdi', DNS1035LabelMax);
}

/** Another image of the same build: `<registry>/cdi-importer:<tag>` → `<registry>/<name>:<tag>`. */
export function siblingImage(importerImage: string, name: string): string {
  return importerImage.replace(/cdi-importer(?=[:@]|$)/, name);
}
