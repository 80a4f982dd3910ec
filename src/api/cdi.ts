// CDI (cluster-scoped): the operator's custom resource. The operator itself comes later.
import Type, { type Static } from 'typebox';
import { Duration, NodePlacementFields, RootFields, StringEnum, Time } from './k8s.ts';
import { CDIConfigSpec } from './cdiconfig.ts';
import { CloneStrategies } from './storageprofile.ts';

const CertConfig = (what: string) =>
  Type.Optional(
    Type.Object(
      {
        duration: Type.Optional(Duration('How long a certificate is valid, e.g. "48h".')),
        renewBefore: Type.Optional(Duration("How long before the certificate's notAfter it is renewed.")),
      },
      { description: `The ${what} certificate settings.` },
    ),
  );

export const CDISpec = Type.Object(
  {
    imagePullPolicy: Type.Optional(
      StringEnum(['Always', 'IfNotPresent', 'Never'] as const, {
        description: 'The pull policy of the CDI images.',
      }),
    ),
    uninstallStrategy: Type.Optional(
      StringEnum(['RemoveWorkloads', 'BlockUninstallIfWorkloadsExist'] as const, {
        description: 'What happens to DataVolumes when CDI is removed.',
      }),
    ),
    infra: Type.Optional(
      Type.Object(
        {
          ...NodePlacementFields,
          deploymentReplicas: Type.Optional(
            Type.Integer({ format: 'int32', description: 'Replicas of cdi-deployment.' }),
          ),
          apiServerReplicas: Type.Optional(
            Type.Integer({ format: 'int32', description: 'Replicas of cdi-apiserver.' }),
          ),
          uploadProxyReplicas: Type.Optional(
            Type.Integer({ format: 'int32', description: 'Replicas of cdi-uploadproxy.' }),
          ),
        },
        { description: 'Placement and replicas of the CDI infrastructure pods.' },
      ),
    ),
    workload: Type.Optional(
      Type.Object(NodePlacementFields, { description: 'Placement of the CDI worker pods.' }),
    ),
    customizeComponents: Type.Optional(
      Type.Object(
        {
          patches: Type.Optional(
            Type.Array(
              Type.Object({
                resourceName: Type.String({
                  minLength: 1,
                  description: 'The name of the resource to patch.',
                }),
                resourceType: Type.String({
                  minLength: 1,
                  description: 'The kind of the resource to patch.',
                }),
                patch: Type.String({ description: 'The patch.' }),
                type: Type.String({ description: 'The patch type: json, merge or strategic.' }),
              }),
              {
                'x-kubernetes-list-type': 'atomic',
                description: 'Patches applied to the installed resources.',
              },
            ),
          ),
          flags: Type.Optional(
            Type.Object(
              {
                api: Type.Optional(Type.Record(Type.String(), Type.String())),
                controller: Type.Optional(Type.Record(Type.String(), Type.String())),
                uploadProxy: Type.Optional(Type.Record(Type.String(), Type.String())),
              },
              { description: 'Extra command-line flags per component.' },
            ),
          ),
        },
        { description: 'Customizations of the installed resources.' },
      ),
    ),
    cloneStrategyOverride: Type.Optional(
      StringEnum(CloneStrategies, { description: 'Overrides the clone strategy of every StorageProfile.' }),
    ),
    config: Type.Optional(CDIConfigSpec),
    certConfig: Type.Optional(
      Type.Object(
        { ca: CertConfig('CA'), server: CertConfig('server'), client: CertConfig('client') },
        { description: 'Certificate rotation settings.' },
      ),
    ),
    priorityClass: Type.Optional(
      Type.String({ description: 'The PriorityClass of the CDI control-plane pods.' }),
    ),
  },
  { description: 'How CDI is installed.' },
);
export type CDISpec = Static<typeof CDISpec>;

export const CDIStatus = Type.Object(
  {
    phase: Type.Optional(
      Type.String({ description: 'The phase of the installation: Deploying, Deployed, Deleting, Error…' }),
    ),
    conditions: Type.Optional(
      Type.Array(
        Type.Object({
          type: Type.String({ description: 'Available, Progressing or Degraded.' }),
          status: Type.String({ description: 'True, False or Unknown.' }),
          lastHeartbeatTime: Type.Optional(Time('When the condition was last updated.')),
          lastTransitionTime: Type.Optional(Time('When the condition last changed its status.')),
          reason: Type.Optional(Type.String()),
          message: Type.Optional(Type.String()),
        }),
        { description: 'The conditions of the installation.' },
      ),
    ),
    operatorVersion: Type.Optional(Type.String({ description: 'The version of the operator.' })),
    targetVersion: Type.Optional(Type.String({ description: 'The version being deployed.' })),
    observedVersion: Type.Optional(Type.String({ description: 'The version deployed.' })),
  },
  { description: 'The state of the installation.' },
);

export const CDI = Type.Object(
  {
    ...RootFields('CDI'),
    spec: CDISpec,
    status: Type.Optional(CDIStatus),
  },
  { description: 'CDI is the custom resource of the CDI operator: one per cluster.' },
);
export type CDI = Static<typeof CDI>;

/**
 * upstream cdi-validate's refusal of a CDI removal under BlockUninstallIfWorkloadsExist (it counts at most 2), which
 * the operator also shows while it holds a removal the webhook could not refuse.
 */
export const uninstallBlockedMessage = (dataVolumes: number): string =>
  `rejecting the uninstall request, since there are still ${dataVolumes} DataVolumes present. Either delete all DataVolumes or change the uninstall strategy before uninstalling CDI`;
