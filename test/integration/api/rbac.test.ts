// The RBAC of src/deploy on the real API server (RBAC authorizer, the controller-manager's ClusterRole aggregation):
// ServiceAccounts bound to the built-in edit, admin and view ClusterRoles in a namespace can (view: cannot) create
// DataVolumes there once CDI's aggregated roles exist; clone-sourcer grants datavolumes/source; config-reader lets
// anyone read StorageProfiles; and the controller's ClusterRole allows updating the finalizers of every owner it
// names with blockOwnerDeletion, and nothing it does not need.
//
// The ClusterRoles are the rendered objects under test-unique names (a deployed CDI keeps its own), removed after.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient, KubeObject, Resource } from '../../../src/kube/index.ts';
import { clusterRules } from '../../../src/deploy/controller.ts';
import { userClusterRoles } from '../../../src/deploy/rbac.ts';
import { clusterClient, createNamespace, eventually, kubectl } from '../kube/cluster.ts';

const rbac = (kind: string, plural: string, namespaced: boolean): Resource => ({
  group: 'rbac.authorization.k8s.io',
  version: 'v1',
  kind,
  plural,
  namespaced,
});
const ClusterRole = rbac('ClusterRole', 'clusterroles', false);
const ClusterRoleBinding = rbac('ClusterRoleBinding', 'clusterrolebindings', false);
const RoleBinding = rbac('RoleBinding', 'rolebindings', true);
const ServiceAccount: Resource = {
  group: '',
  version: 'v1',
  kind: 'ServiceAccount',
  plural: 'serviceaccounts',
  namespaced: true,
};

const suffix = randomBytes(3).toString('hex');
const renamed = (n: string): string => n.replace(/^cdi\.kubevirt\.io:/, `cdi-test-${suffix}:`);
const created: [Resource, string][] = [];
let client: KubeClient;
let ns: string;
let cleanupNs: () => Promise<void> = async () => {};

const sa = (name: string): string => `system:serviceaccount:${ns}:${name}`;

const SubjectAccessReview: Resource = {
  group: 'authorization.k8s.io',
  version: 'v1',
  kind: 'SubjectAccessReview',
  plural: 'subjectaccessreviews',
  namespaced: false,
};

/** Asks the API server's authorizer (a SubjectAccessReview) whether the ServiceAccount user `as` may do it. */
async function canI(
  as: string,
  verb: string,
  resource: string,
  opts: { namespace?: string; subresource?: string } = {},
): Promise<boolean> {
  const [plural = '', ...group] = resource.split('.');
  const review = await client.create<KubeObject & { status?: { allowed?: boolean } }>(SubjectAccessReview, {
    spec: {
      user: as,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
      resourceAttributes: {
        verb,
        group: group.join('.'),
        resource: plural,
        ...(opts.subresource ? { subresource: opts.subresource } : {}),
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
      },
    },
  } as KubeObject);
  return review.status?.allowed === true;
}

async function bind(role: string, subject: string, clusterRole = true): Promise<void> {
  await client.create(RoleBinding, {
    metadata: { name: `${subject}-${role.replace(/[^a-z0-9-]/g, '-')}`, namespace: ns },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: clusterRole ? 'ClusterRole' : 'Role',
      name: role,
    },
    subjects: [{ kind: 'ServiceAccount', name: subject, namespace: ns }],
  } as KubeObject);
}

before(async () => {
  client = clusterClient();
  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'rbac'));
  for (const o of userClusterRoles({ 'cdi-ts-test': 'rbac' }) as (KubeObject & {
    roleRef?: { name: string };
  })[]) {
    const name = renamed(o.metadata?.name ?? '');
    const obj = {
      ...o,
      metadata: { ...o.metadata, name },
      ...(o.roleRef ? { roleRef: { ...o.roleRef, name: renamed(o.roleRef.name) } } : {}),
    };
    const r = o.kind === 'ClusterRole' ? ClusterRole : ClusterRoleBinding;
    await client.create(r, obj);
    created.push([r, name]);
  }
  const controller = `cdi-test-${suffix}:controller`;
  await client.create(ClusterRole, {
    metadata: { name: controller, labels: { 'cdi-ts-test': 'rbac' } },
    rules: clusterRules(),
  } as KubeObject);
  created.push([ClusterRole, controller]);
  for (const name of ['editor', 'admin', 'viewer', 'sourcer', 'nobody', 'controller'])
    await client.create(ServiceAccount, { metadata: { name, namespace: ns } });
  await bind('edit', 'editor');
  await bind('admin', 'admin');
  await bind('view', 'viewer');
  await bind(`cdi-test-${suffix}:clone-sourcer`, 'sourcer');
  const crb = `cdi-test-${suffix}:controller`;
  await client.create(ClusterRoleBinding, {
    metadata: { name: crb, labels: { 'cdi-ts-test': 'rbac' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: controller },
    subjects: [{ kind: 'ServiceAccount', name: 'controller', namespace: ns }],
  } as KubeObject);
  created.push([ClusterRoleBinding, crb]);
});

after(async () => {
  for (const [r, name] of created.reverse()) await client.delete(r, name);
  await cleanupNs();
});

const dvManifest = (name: string): string =>
  JSON.stringify({
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name, namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  });

async function createAs(as: string, name: string): Promise<{ code: number; stderr: string }> {
  const file = join(tmpdir(), `cdi-rbac-${suffix}-${name}.json`);
  await writeFile(file, dvManifest(name));
  try {
    return await kubectl(
      'create',
      '-f',
      file,
      `--as=${as}`,
      '--as-group=system:serviceaccounts',
      '--as-group=system:authenticated',
    );
  } finally {
    await rm(file, { force: true });
  }
}

void test('namespace editors and admins create DataVolumes through the aggregated roles; viewers read but cannot', async () => {
  // the controller-manager aggregates the rules into edit/admin/view asynchronously
  await eventually(
    'cdi rules aggregated into edit and admin',
    async () =>
      (await canI(sa('editor'), 'create', 'datavolumes.cdi.kubevirt.io', { namespace: ns })) &&
      (await canI(sa('admin'), 'create', 'datavolumes.cdi.kubevirt.io', { namespace: ns })),
  );
  for (const who of ['editor', 'admin']) {
    const r = await createAs(sa(who), `by-${who}`);
    assert.equal(r.code, 0, `${who} could not create a DataVolume: ${r.stderr}`);
    for (const kind of [
      'datasources',
      'dataimportcrons',
      'volumeimportsources',
      'volumeuploadsources',
      'volumeclonesources',
    ])
      assert.ok(
        await canI(sa(who), 'create', `${kind}.cdi.kubevirt.io`, { namespace: ns }),
        `${who} create ${kind}`,
      );
    assert.ok(
      await canI(sa(who), 'create', 'datavolumes.cdi.kubevirt.io', { namespace: ns, subresource: 'source' }),
      `${who} clones out`,
    );
    assert.ok(
      await canI(sa(who), 'create', 'uploadtokenrequests.upload.cdi.kubevirt.io', { namespace: ns }),
      `${who} uploads`,
    );
    assert.ok(await canI(sa(who), 'delete', 'datavolumes.cdi.kubevirt.io', { namespace: ns }));
  }
  await eventually('cdi rules aggregated into view', () =>
    canI(sa('viewer'), 'list', 'datavolumes.cdi.kubevirt.io', { namespace: ns }),
  );
  const denied = await createAs(sa('viewer'), 'by-viewer');
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /forbidden/i);
  assert.ok(
    !(await canI(sa('viewer'), 'create', 'datavolumes.cdi.kubevirt.io', {
      namespace: ns,
      subresource: 'source',
    })),
  );
  const got = await kubectl('get', 'dv', '-n', ns, '-o', 'name', `--as=${sa('viewer')}`);
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(got.stdout.trim().split('\n').sort(), [
    'datavolume.cdi.kubevirt.io/by-admin',
    'datavolume.cdi.kubevirt.io/by-editor',
  ]);
  // none of it elsewhere: the bindings are namespaced
  assert.ok(!(await canI(sa('editor'), 'create', 'datavolumes.cdi.kubevirt.io', { namespace: 'default' })));
});

void test('clone-sourcer grants cloning out of a namespace and nothing else; config-reader lets anyone read profiles', async () => {
  assert.ok(
    await canI(sa('sourcer'), 'create', 'datavolumes.cdi.kubevirt.io', {
      namespace: ns,
      subresource: 'source',
    }),
  );
  assert.ok(!(await canI(sa('sourcer'), 'create', 'datavolumes.cdi.kubevirt.io', { namespace: ns })));
  assert.ok(
    !(await canI(sa('nobody'), 'create', 'datavolumes.cdi.kubevirt.io', {
      namespace: ns,
      subresource: 'source',
    })),
  );
  assert.ok(await canI(sa('nobody'), 'list', 'storageprofiles.cdi.kubevirt.io'));
  assert.ok(await canI(sa('nobody'), 'get', 'cdiconfigs.cdi.kubevirt.io'));
  assert.ok(!(await canI(sa('nobody'), 'update', 'storageprofiles.cdi.kubevirt.io')));
});

void test('the controller may update the finalizers of what it owns with blockOwnerDeletion, and no more than it needs', async () => {
  const c = sa('controller');
  for (const [verb, resource, subresource] of [
    ['update', 'persistentvolumeclaims', 'finalizers'],
    ['update', 'pods', 'finalizers'],
    ['update', 'datavolumes.cdi.kubevirt.io', 'finalizers'],
    ['patch', 'datavolumes.cdi.kubevirt.io', 'status'],
    ['update', 'storageprofiles.cdi.kubevirt.io', 'status'],
  ] as const)
    assert.ok(
      await canI(c, verb, resource, { namespace: ns, subresource }),
      `${verb} ${resource}/${subresource}`,
    );
  for (const [verb, resource] of [
    ['create', 'pods'],
    ['create', 'persistentvolumeclaims'],
    ['patch', 'storageprofiles.cdi.kubevirt.io'],
    ['watch', 'volumesnapshotclasses.snapshot.storage.k8s.io'],
    ['list', 'persistentvolumes'],
    ['create', 'events'],
    // smart clones' temporary claims and snapshots, populators' primes and PV hand-over, a DataImportCron's
    // garbage collection of its own outdated imports
    ['delete', 'persistentvolumeclaims'],
    ['delete', 'datavolumes.cdi.kubevirt.io'],
    ['update', 'persistentvolumes'],
    ['create', 'volumesnapshots.snapshot.storage.k8s.io'],
  ] as const)
    assert.ok(await canI(c, verb, resource, { namespace: ns }), `${verb} ${resource}`);
  for (const [verb, resource] of [
    ['get', 'secrets'],
    ['list', 'secrets'],
    ['delete', 'namespaces'],
    ['update', 'nodes'],
    ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
  ] as const)
    assert.ok(!(await canI(c, verb, resource, { namespace: ns })), `not ${verb} ${resource}`);
});
