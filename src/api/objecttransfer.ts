// ObjectTransfer (cluster-scoped, deprecated upstream for removal in v1): moves a PVC or DataVolume to another
// namespace or name. Served so that upstream manifests and clients that list it keep working. Field names and
// required lists follow upstream's types_transfer.go; descriptions are ours.
import Type, { type Static } from 'typebox';
import { ConditionFields, RootFields } from './k8s.ts';

export const ObjectTransferSpec = Type.Object(
  {
    source: Type.Object(
      {
        apiVersion: Type.Optional(Type.String({ description: 'The API version of the object to move.' })),
        kind: Type.String({
          description: 'The kind of the object to move: PersistentVolumeClaim or DataVolume.',
        }),
        namespace: Type.String({ description: 'The namespace of the object to move.' }),
        name: Type.String({ description: 'The name of the object to move.' }),
        requiredAnnotations: Type.Optional(
          Type.Record(Type.String(), Type.String(), {
            description: 'Annotations the object must carry before it is moved.',
          }),
        ),
      },
      { description: 'The object to move.' },
    ),
    target: Type.Object(
      {
        namespace: Type.Optional(
          Type.String({ description: 'The namespace to move to; the same when unset.' }),
        ),
        name: Type.Optional(Type.String({ description: 'The new name; the same when unset.' })),
      },
      { description: 'Where to move it.' },
    ),
    parentName: Type.Optional(Type.String({ description: 'The ObjectTransfer that created this one.' })),
  },
  { description: 'What to move where.' },
);

export const ObjectTransferCondition = Type.Object(ConditionFields('The type of the condition: Complete.'), {
  description: 'The state of the transfer at a point in time.',
});

export const ObjectTransfer = Type.Object(
  {
    ...RootFields('ObjectTransfer'),
    spec: ObjectTransferSpec,
    status: Type.Optional(
      Type.Object(
        {
          data: Type.Optional(
            Type.Record(Type.String(), Type.String(), { description: 'Intermediate state of the transfer.' }),
          ),
          phase: Type.Optional(
            Type.String({ description: 'The phase of the transfer: Pending, Running, Complete or Error.' }),
          ),
          conditions: Type.Optional(
            Type.Array(ObjectTransferCondition, { description: 'The Complete condition.' }),
          ),
        },
        { description: 'The observed state of the transfer.' },
      ),
    ),
  },
  {
    description:
      'Deprecated (upstream removes it in v1). An ObjectTransfer moves a PersistentVolumeClaim or DataVolume to another namespace.',
  },
);
export type ObjectTransfer = Static<typeof ObjectTransfer>;
