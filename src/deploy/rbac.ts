// The ClusterRoles for people and their tools, with upstream's names and rules (pkg/operator/resources/cluster/
// rbac.go, v1.66):
// - cdi.kubevirt.io:admin, :edit, :view aggregate into the built-in admin, edit and view ClusterRoles, so a
//   namespace admin or editor can create DataVolumes (and the other namespaced CDI kinds) there, and a viewer can
//   read them;
// - cdi.kubevirt.io:clone-sourcer grants `create` on datavolumes/source: bound in a source namespace, it lets a
//   subject clone PVCs out of it into namespaces of its own;
// - cdi.kubevirt.io:config-reader lets every authenticated user and service account read CDIConfig and
//   StorageProfiles (KubeVirt and `virtctl` read them to fill in volumes).
// upstream's rules also name the forklift.cdi.kubevirt.io populators, which this project does not install; the
// rules are kept as upstream's (a rule on a resource that does not exist grants nothing).

type Obj = Record<string, unknown>;

const rbacGroup = 'rbac.authorization.k8s.io';

/** upstream getAdminPolicyRules (edit gets the same: the difference between admin and edit is RBAC itself) */
export function adminRules(): Obj[] {
  return [
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: [
        'datavolumes',
        'dataimportcrons',
        'datasources',
        'volumeimportsources',
        'volumeuploadsources',
        'volumeclonesources',
      ],
      verbs: ['*'],
    },
    { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes/source'], verbs: ['create'] },
    { apiGroups: ['upload.cdi.kubevirt.io'], resources: ['uploadtokenrequests'], verbs: ['*'] },
    {
      apiGroups: ['forklift.cdi.kubevirt.io'],
      resources: ['ovirtvolumepopulators', 'openstackvolumepopulators'],
      verbs: ['*'],
    },
  ];
}

/** upstream getViewPolicyRules */
export function viewRules(): Obj[] {
  return [
    {
      apiGroups: ['cdi.kubevirt.io'],
      resources: [
        'cdiconfigs',
        'dataimportcrons',
        'datasources',
        'datavolumes',
        'objecttransfers',
        'storageprofiles',
        'volumeimportsources',
        'volumeuploadsources',
        'volumeclonesources',
      ],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: ['forklift.cdi.kubevirt.io'],
      resources: ['ovirtvolumepopulators', 'openstackvolumepopulators'],
      verbs: ['get', 'list', 'watch'],
    },
  ];
}

export function cloneSourcerRules(): Obj[] {
  return [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes/source'], verbs: ['create'] }];
}

export function configReaderRules(): Obj[] {
  return [
    { apiGroups: ['cdi.kubevirt.io'], resources: ['cdiconfigs', 'storageprofiles'], verbs: ['get', 'list', 'watch'] },
  ];
}

/** The user-facing ClusterRoles and the config-reader binding, labelled with `common` (and as upstream, cdi.kubevirt.io: ""). */
export function userClusterRoles(common: Record<string, string>): Obj[] {
  const labels = { ...common, 'cdi.kubevirt.io': '' };
  const role = (name: string, rules: Obj[], aggregateTo?: string): Obj => ({
    apiVersion: `${rbacGroup}/v1`,
    kind: 'ClusterRole',
    metadata: {
      name,
      labels: aggregateTo ? { ...labels, [`${rbacGroup}/aggregate-to-${aggregateTo}`]: 'true' } : labels,
    },
    rules,
  });
  return [
    role('cdi.kubevirt.io:admin', adminRules(), 'admin'),
    role('cdi.kubevirt.io:edit', adminRules(), 'edit'),
    role('cdi.kubevirt.io:view', viewRules(), 'view'),
    role('cdi.kubevirt.io:clone-sourcer', cloneSourcerRules()),
    role('cdi.kubevirt.io:config-reader', configReaderRules()),
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'cdi.kubevirt.io:config-reader', labels },
      roleRef: { apiGroup: rbacGroup, kind: 'ClusterRole', name: 'cdi.kubevirt.io:config-reader' },
      // upstream's subjects; "system:serviceaccount" (sic) matches no group, service accounts are authenticated anyway
      subjects: [
        { kind: 'Group', name: 'system:authenticated', apiGroup: rbacGroup },
        { kind: 'Group', name: 'system:serviceaccount', apiGroup: rbacGroup },
      ],
    },
  ];
}
