// Schemas for the Kubernetes types that CDI's API embeds (PersistentVolumeClaimSpec, label selectors,
// resource requirements, node placement). Field names and shapes follow k8s.io/api core/v1 so that a
// manifest written for upstream CDI is accepted unchanged; descriptions are ours.
import Type, { type Static, type TSchema, type TUnsafe } from 'typebox';

/** A string restricted to a fixed set of values; emits `{type: string, enum: [...]}` (a CRD cannot use `const`). */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** A resource.Quantity: "10Gi", "500m" or a plain number, as the API server accepts it. */
export const Quantity = Type.Unsafe<string | number>({
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern:
    '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
  'x-kubernetes-int-or-string': true,
});

/** A metav1.Time: RFC 3339 in UTC with second precision. */
export function Time(description: string): TUnsafe<string> {
  return Type.Unsafe<string>({ type: 'string', format: 'date-time', description });
}

/** A metav1.Duration such as "48h0m0s". */
export function Duration(description: string): TUnsafe<string> {
  return Type.Unsafe<string>({ type: 'string', description });
}

function StringMap(description: string): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string' },
    description,
  });
}

function QuantityMap(description: string): TUnsafe<Record<string, string | number>> {
  return Type.Unsafe<Record<string, string | number>>({
    type: 'object',
    additionalProperties: Quantity,
    description,
  });
}

export const OwnerReference = Type.Object({
  apiVersion: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  uid: Type.String(),
  controller: Type.Optional(Type.Boolean()),
  blockOwnerDeletion: Type.Optional(Type.Boolean()),
});
export type OwnerReference = Static<typeof OwnerReference>;

/**
 * ObjectMeta as far as our code reads it. In a CRD the API server owns `metadata` and the schema must be
 * just `{type: object}`; crd.ts replaces this schema there.
 */
export const ObjectMeta = Type.Object({
  name: Type.Optional(Type.String()),
  generateName: Type.Optional(Type.String()),
  namespace: Type.Optional(Type.String()),
  uid: Type.Optional(Type.String()),
  resourceVersion: Type.Optional(Type.String()),
  generation: Type.Optional(Type.Integer()),
  creationTimestamp: Type.Optional(Type.String()),
  deletionTimestamp: Type.Optional(Type.String()),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  ownerReferences: Type.Optional(Type.Array(OwnerReference)),
  finalizers: Type.Optional(Type.Array(Type.String())),
});
export type ObjectMeta = Static<typeof ObjectMeta>;

export const AccessModes = Type.Array(Type.String(), {
  description:
    'The desired access modes of the volume: ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod.',
  'x-kubernetes-list-type': 'atomic',
});

export const LabelSelector = Type.Object(
  {
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ description: 'The label key that the selector applies to.' }),
            operator: Type.String({
              description: 'How the key relates to the values: In, NotIn, Exists or DoesNotExist.',
            }),
            values: Type.Optional(
              Type.Array(Type.String(), {
                description: 'Values for In and NotIn; must be empty for Exists and DoesNotExist.',
                'x-kubernetes-list-type': 'atomic',
              }),
            ),
          },
          { description: 'A selector requirement: a key, an operator and values.' },
        ),
        {
          description: 'A list of label selector requirements, ANDed together.',
          'x-kubernetes-list-type': 'atomic',
        },
      ),
    ),
    matchLabels: Type.Optional(
      StringMap(
        'A map of {key,value} pairs; each is equivalent to a matchExpressions entry with operator In.',
      ),
    ),
  },
  { description: 'A label query over a set of resources.', 'x-kubernetes-map-type': 'atomic' },
);
export type LabelSelector = Static<typeof LabelSelector>;

export const TypedLocalObjectReference = Type.Object(
  {
    apiGroup: Type.Optional(
      Type.String({ description: 'The group of the referenced resource; empty for the core group.' }),
    ),
    kind: Type.String({ description: 'The kind of the referenced resource.' }),
    name: Type.String({ description: 'The name of the referenced resource.' }),
  },
  { description: 'A reference to an object in the same namespace.', 'x-kubernetes-map-type': 'atomic' },
);
export type TypedLocalObjectReference = Static<typeof TypedLocalObjectReference>;

export const TypedObjectReference = Type.Object(
  {
    apiGroup: Type.Optional(
      Type.String({ description: 'The group of the referenced resource; empty for the core group.' }),
    ),
    kind: Type.String({ description: 'The kind of the referenced resource.' }),
    name: Type.String({ description: 'The name of the referenced resource.' }),
    namespace: Type.Optional(
      Type.String({
        description:
          'The namespace of the referenced resource (needs the CrossNamespaceVolumeDataSource gate).',
      }),
    ),
  },
  { description: 'A reference to an object that populates the volume.' },
);
export type TypedObjectReference = Static<typeof TypedObjectReference>;

export const VolumeResourceRequirements = Type.Object(
  {
    limits: Type.Optional(QuantityMap('The maximum amount of storage allowed.')),
    requests: Type.Optional(QuantityMap('The minimum amount of storage required, e.g. {storage: 10Gi}.')),
  },
  { description: 'The storage resources the volume should have.' },
);

export const ResourceRequirements = Type.Object(
  {
    claims: Type.Optional(
      Type.Array(
        Type.Object({
          name: Type.String({ description: 'The name of an entry in pod.spec.resourceClaims.' }),
          request: Type.Optional(Type.String({ description: 'The request within that claim to use.' })),
        }),
        {
          description: 'Dynamically allocated resources (DRA) used by the container.',
          'x-kubernetes-list-map-keys': ['name'],
          'x-kubernetes-list-type': 'map',
        },
      ),
    ),
    limits: Type.Optional(QuantityMap('The maximum amount of compute resources allowed.')),
    requests: Type.Optional(QuantityMap('The minimum amount of compute resources required.')),
  },
  { description: 'Compute resource requirements (cpu, memory).' },
);
export type ResourceRequirements = Static<typeof ResourceRequirements>;

export const VolumeMode = Type.String({ description: 'Block or Filesystem (the default when unset).' });

export const PersistentVolumeClaimSpec = Type.Object(
  {
    accessModes: Type.Optional(AccessModes),
    dataSource: Type.Optional(TypedLocalObjectReference),
    dataSourceRef: Type.Optional(TypedObjectReference),
    resources: Type.Optional(VolumeResourceRequirements),
    selector: Type.Optional(LabelSelector),
    storageClassName: Type.Optional(
      Type.String({ description: 'The name of the StorageClass the claim asks for.' }),
    ),
    volumeAttributesClassName: Type.Optional(
      Type.String({ description: 'The VolumeAttributesClass the claim uses.' }),
    ),
    volumeMode: Type.Optional(VolumeMode),
    volumeName: Type.Optional(Type.String({ description: 'The PersistentVolume to bind to.' })),
  },
  { description: 'A PersistentVolumeClaimSpec, used as given (Kubernetes defaults apply).' },
);
export type PersistentVolumeClaimSpec = Static<typeof PersistentVolumeClaimSpec>;

export const LocalObjectReference = Type.Object(
  { name: Type.Optional(Type.String({ default: '', description: 'The name of the referenced object.' })) },
  { 'x-kubernetes-map-type': 'atomic' },
);

export const Toleration = Type.Object(
  {
    effect: Type.Optional(
      Type.String({ description: 'NoSchedule, PreferNoSchedule or NoExecute; empty matches all.' }),
    ),
    key: Type.Optional(Type.String({ description: 'The taint key the toleration applies to.' })),
    operator: Type.Optional(Type.String({ description: 'Exists or Equal (the default).' })),
    tolerationSeconds: Type.Optional(
      Type.Integer({ format: 'int64', description: 'How long a NoExecute taint is tolerated.' }),
    ),
    value: Type.Optional(Type.String({ description: 'The taint value to match.' })),
  },
  { description: 'A toleration of a node taint.' },
);

const atomicList = <T extends TSchema>(items: T, description: string) =>
  Type.Array(items, { description, 'x-kubernetes-list-type': 'atomic' });

const NodeSelectorRequirement = Type.Object(
  {
    key: Type.String({ description: 'The label key (or field name) the requirement applies to.' }),
    operator: Type.String({ description: 'In, NotIn, Exists, DoesNotExist, Gt or Lt.' }),
    values: Type.Optional(
      atomicList(Type.String(), 'The values; one integer for Gt and Lt, none for Exists and DoesNotExist.'),
    ),
  },
  { description: 'A node selector requirement: a key, an operator and values.' },
);

const NodeSelectorTerm = Type.Object(
  {
    matchExpressions: Type.Optional(
      atomicList(NodeSelectorRequirement, 'Requirements on node labels, ANDed together.'),
    ),
    matchFields: Type.Optional(
      atomicList(NodeSelectorRequirement, 'Requirements on node fields, ANDed together.'),
    ),
  },
  { description: 'A node selector term; terms of a list are ORed.', 'x-kubernetes-map-type': 'atomic' },
);

const PodAffinityTerm = Type.Object(
  {
    labelSelector: Type.Optional(LabelSelector),
    matchLabelKeys: Type.Optional(
      atomicList(
        Type.String(),
        'Pod label keys whose values are taken from the incoming pod and ANDed with labelSelector.',
      ),
    ),
    mismatchLabelKeys: Type.Optional(
      atomicList(Type.String(), "Pod label keys whose values must differ from the incoming pod's."),
    ),
    namespaceSelector: Type.Optional(LabelSelector),
    namespaces: Type.Optional(
      atomicList(Type.String(), "Namespaces the term applies to; the pod's own when empty."),
    ),
    topologyKey: Type.String({
      description: 'The node label whose value defines "co-located" (e.g. a zone).',
    }),
  },
  { description: 'A set of pods (labelSelector in namespaces) the pod should be co-located with, or not.' },
);

const WeightedPodAffinityTerm = Type.Object(
  {
    podAffinityTerm: PodAffinityTerm,
    weight: Type.Integer({ format: 'int32', description: 'The weight, 1-100.' }),
  },
  { description: 'A preferred pod affinity term with its weight.' },
);

const podAffinityFields = (what: string) => ({
  preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
    atomicList(WeightedPodAffinityTerm, `Soft ${what} rules: nodes that satisfy more of them score higher.`),
  ),
  requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
    atomicList(PodAffinityTerm, `Hard ${what} rules: the pod is not scheduled unless all hold.`),
  ),
});

/** A core/v1 Affinity, field for field. */
export const Affinity = Type.Object(
  {
    nodeAffinity: Type.Optional(
      Type.Object(
        {
          preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
            atomicList(
              Type.Object(
                {
                  preference: NodeSelectorTerm,
                  weight: Type.Integer({ format: 'int32', description: 'The weight, 1-100.' }),
                },
                { description: 'A preferred node selector term with its weight.' },
              ),
              'Soft node rules: nodes that match more of them score higher.',
            ),
          ),
          requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
            Type.Object(
              { nodeSelectorTerms: atomicList(NodeSelectorTerm, 'The terms, ORed.') },
              {
                description: 'Hard node rules: the pod is not scheduled elsewhere.',
                'x-kubernetes-map-type': 'atomic',
              },
            ),
          ),
        },
        { description: 'Node affinity scheduling rules.' },
      ),
    ),
    podAffinity: Type.Optional(
      Type.Object(podAffinityFields('co-location'), {
        description: 'Rules to co-locate the pod with other pods.',
      }),
    ),
    podAntiAffinity: Type.Optional(
      Type.Object(podAffinityFields('anti-affinity'), {
        description: 'Rules to keep the pod away from other pods.',
      }),
    ),
  },
  { description: 'Affinity scheduling rules (nodeAffinity, podAffinity, podAntiAffinity) for the pods.' },
);

/** Node placement (kubevirt.io/controller-lifecycle-operator-sdk NodePlacement). */
export const NodePlacementFields = {
  nodeSelector: Type.Optional(StringMap('Labels a node must have for the pods to be scheduled there.')),
  affinity: Type.Optional(Affinity),
  tolerations: Type.Optional(Type.Array(Toleration, { description: 'Tolerations for the pods.' })),
};

/** apiVersion, kind and metadata of a cdi.kubevirt.io/v1beta1 object (the root of every CDI kind). */
// eslint-disable-next-line @typescript-eslint/explicit-module-boundary-types -- the inferred TypeBox type is the point
export function RootFields(kind: string) {
  return {
    apiVersion: Type.Optional(
      Type.String({ description: 'The versioned schema of this object: cdi.kubevirt.io/v1beta1.' }),
    ),
    kind: Type.Optional(Type.String({ description: `The REST resource this object represents: ${kind}.` })),
    metadata: Type.Optional(ObjectMeta),
  };
}

/** A condition in the upstream CDI shape (status, reason, message and two timestamps). */
// eslint-disable-next-line @typescript-eslint/explicit-module-boundary-types -- the inferred TypeBox type is the point
export function ConditionFields(typeDescription: string) {
  return {
    type: Type.String({ description: typeDescription }),
    status: Type.String({ description: 'The status of the condition: True, False or Unknown.' }),
    lastTransitionTime: Type.Optional(Time('When the condition last changed its status.')),
    lastHeartbeatTime: Type.Optional(Time('When the condition was last updated.')),
    reason: Type.Optional(
      Type.String({ description: "A machine-readable reason for the condition's last transition." }),
    ),
    message: Type.Optional(
      Type.String({ description: 'A human-readable message with details about the last transition.' }),
    ),
  };
}
