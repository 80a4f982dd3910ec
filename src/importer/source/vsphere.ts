/**
 * The few vSphere API calls the vddk source makes (upstream makes the same ones through govmomi), as SOAP over
 * HTTPS to https://<vCenter or ESXi>/sdk (vSphere Web Services API, namespace urn:vim25):
 *
 *   RetrieveServiceContent   the ServiceInstance: session manager, search index, property collector, about
 *   Login / Logout           a session (cookie vmware_soap_session)
 *   FindByUuid               the VM by instance UUID, else by BIOS UUID
 *   RetrievePropertiesEx     config.hardware.device and snapshot of the VM, config.hardware.device of snapshots
 *   QueryChangedDiskAreas    changed-block tracking between a change ID and a snapshot (warm import)
 */
import { ErrorKind, ImportError } from '../errors.ts';
import { ApiClient, type ApiClientOptions } from './api-client.ts';
import { child, children, childText, parseXml, xmlEscape, type XmlElement } from './xml.ts';

export interface MoRef {
  type: string;
  value: string;
}

export interface VirtualDiskInfo {
  key: number;
  fileName: string;
  diskObjectId?: string;
  changeId?: string;
  capacityInBytes?: number;
}

export interface SnapshotNode {
  name: string;
  snapshot: MoRef;
  children: SnapshotNode[];
}

export interface ChangedAreas {
  startOffset: number;
  length: number;
  areas: { start: number; length: number }[];
}

const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const XSI = 'http://www.w3.org/2001/XMLSchema-instance';

const moref = (tag: string, r: MoRef): string =>
  `<${tag} type="${xmlEscape(r.type)}">${xmlEscape(r.value)}</${tag}>`;

function parseMoRef(el: XmlElement | undefined): MoRef | undefined {
  if (!el) return undefined;
  return { type: el.attrs.type ?? '', value: el.text.trim() };
}

const int = (s: string | undefined): number | undefined =>
  s !== undefined && /^-?\d+$/.test(s) ? Number(s) : undefined;

export class VSphereClient {
  private readonly sdk: string;
  private readonly client: ApiClient;
  private cookie: string | undefined;
  private content: XmlElement | undefined;
  readonly host: string;

  constructor(endpoint: string, tls: Omit<ApiClientOptions, 'what' | 'tlsHint'>) {
    let u: URL;
    try {
      u = new URL(endpoint.includes('://') ? endpoint : `https://${endpoint}`);
    } catch {
      throw new ImportError(ErrorKind.Invalid, `invalid vCenter/ESXi URL "${endpoint}"`);
    }
    this.host = u.hostname;
    // govmomi replaces the path with /sdk (upstream does the same)
    this.sdk = `${u.protocol}//${u.host}/sdk`;
    this.client = new ApiClient({
      ...tls,
      what: 'vCenter',
      tlsHint:
        "give the DataVolume the server's SHA-1 thumbprint (vddk.thumbprint) or its CA in certConfigMap, or set insecureSkipVerify",
    });
  }

  private async call(method: string, inner: string): Promise<XmlElement> {
    const body =
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="${SOAP_ENV}" xmlns:xsi="${XSI}">` +
      `<soapenv:Body><${method} xmlns="urn:vim25">${inner}</${method}></soapenv:Body></soapenv:Envelope>`;
    const res = await this.client.request(this.sdk, {
      method: 'POST',
      headers: {
        'content-type': 'text/xml; charset=utf-8',
        soapaction: 'urn:vim25/7.0',
        ...(this.cookie ? { cookie: this.cookie } : {}),
      },
      body,
    });
    const set = res.headers['set-cookie'];
    const first = Array.isArray(set) ? set[0] : set;
    if (first && /vmware_soap_session/.test(first)) this.cookie = first.split(';')[0];
    const text = res.text();
    if (!text.trim().startsWith('<')) {
      throw new ImportError(
        ErrorKind.Transfer,
        `vCenter answered ${method} with HTTP ${res.status}: ${text.slice(0, 200)}`,
      );
    }
    const env = parseXml(text, `vCenter's answer to ${method}`);
    const soapBody = child(env, 'Body');
    const fault = child(soapBody, 'Fault');
    if (fault) {
      const detail = child(fault, 'detail')?.children[0];
      const kind = detail ? (detail.attrs.type ?? detail.name.replace(/Fault$/, '')) : '';
      const err = new ImportError(
        ErrorKind.Transfer,
        `vCenter refused ${method}: ${childText(fault, 'faultstring') ?? 'no details'}${kind ? ` (${kind})` : ''}`,
      );
      (err as ImportError & { fault?: string }).fault = kind;
      throw err;
    }
    const resp = child(soapBody, `${method}Response`);
    if (!resp)
      throw new ImportError(ErrorKind.Transfer, `vCenter's answer to ${method} has no ${method}Response`);
    return resp;
  }

  private sc(name: string): MoRef {
    const r = parseMoRef(child(this.content, name));
    if (!r) throw new ImportError(ErrorKind.Transfer, `vCenter's service content has no ${name}`);
    return r;
  }

  /** "VirtualCenter" or "HostAgent" (ESXi). */
  get apiType(): string {
    return childText(child(this.content, 'about'), 'apiType') ?? '';
  }

  async login(user: string, password: string): Promise<void> {
    const r = await this.call(
      'RetrieveServiceContent',
      moref('_this', { type: 'ServiceInstance', value: 'ServiceInstance' }),
    );
    this.content = child(r, 'returnval');
    try {
      await this.call(
        'Login',
        `${moref('_this', this.sc('sessionManager'))}<userName>${xmlEscape(user)}</userName><password>${xmlEscape(password)}</password>`,
      );
    } catch (err) {
      if ((err as { fault?: string }).fault === 'InvalidLogin') {
        throw new ImportError(
          ErrorKind.Invalid,
          `vCenter at ${this.host} refused the login of user "${user}": check the user name and password in the DataVolume's secretRef (keys accessKeyId and secretKey)`,
        );
      }
      throw err;
    }
  }

  async logout(): Promise<void> {
    if (this.cookie)
      await this.call('Logout', moref('_this', this.sc('sessionManager'))).catch(() => undefined);
    this.cookie = undefined;
    await this.client.close();
  }

  /** The VM with this instance UUID, else with this BIOS UUID (upstream's order). */
  async findVm(uuid: string): Promise<MoRef | undefined> {
    for (const instance of [true, false]) {
      const r = await this.call(
        'FindByUuid',
        `${moref('_this', this.sc('searchIndex'))}<uuid>${xmlEscape(uuid)}</uuid><vmSearch>true</vmSearch><instanceUuid>${instance}</instanceUuid>`,
      );
      const ref = parseMoRef(child(r, 'returnval'));
      if (ref?.value) return ref;
    }
    return undefined;
  }

  /** The properties `paths` of one object, by name. */
  async properties(obj: MoRef, paths: string[]): Promise<Map<string, XmlElement>> {
    const spec =
      `<specSet><propSet><type>${xmlEscape(obj.type)}</type>${paths.map((p) => `<pathSet>${xmlEscape(p)}</pathSet>`).join('')}</propSet>` +
      `<objectSet>${moref('obj', obj)}</objectSet></specSet><options/>`;
    const r = await this.call(
      'RetrievePropertiesEx',
      `${moref('_this', this.sc('propertyCollector'))}${spec}`,
    );
    const out = new Map<string, XmlElement>();
    for (const o of children(child(r, 'returnval'), 'objects')) {
      for (const p of children(o, 'propSet')) {
        const name = childText(p, 'name');
        const val = child(p, 'val');
        if (name && val) out.set(name, val);
      }
    }
    return out;
  }

  /** The virtual disks among config.hardware.device of a VM or a snapshot. */
  async disks(obj: MoRef): Promise<VirtualDiskInfo[]> {
    const props = await this.properties(obj, ['config.hardware.device']);
    const list = props.get('config.hardware.device');
    const out: VirtualDiskInfo[] = [];
    for (const d of list?.children ?? []) {
      if ((d.attrs.type ?? d.name) !== 'VirtualDisk') continue;
      const backing = child(d, 'backing');
      const key = int(childText(d, 'key'));
      const fileName = childText(backing, 'fileName');
      if (key === undefined || !fileName) continue;
      const diskObjectId = childText(d, 'diskObjectId');
      const changeId = childText(backing, 'changeId');
      const capacityInBytes = int(childText(d, 'capacityInBytes'));
      out.push({
        key,
        fileName,
        ...(diskObjectId ? { diskObjectId } : {}),
        ...(changeId ? { changeId } : {}),
        ...(capacityInBytes !== undefined ? { capacityInBytes } : {}),
      });
    }
    return out;
  }

  /** The VM's snapshot tree (empty without snapshots). */
  async snapshots(vm: MoRef): Promise<SnapshotNode[]> {
    const props = await this.properties(vm, ['snapshot']);
    const parse = (el: XmlElement): SnapshotNode => ({
      name: childText(el, 'name') ?? '',
      snapshot: parseMoRef(child(el, 'snapshot')) ?? { type: 'VirtualMachineSnapshot', value: '' },
      children: children(el, 'childSnapshotList').map(parse),
    });
    return children(props.get('snapshot'), 'rootSnapshotList').map(parse);
  }

  /** One page of changed areas of disk `deviceKey` at `snapshot` since `changeId`, from `startOffset`. */
  async changedAreas(
    vm: MoRef,
    snapshot: MoRef,
    deviceKey: number,
    startOffset: number,
    changeId: string,
  ): Promise<ChangedAreas> {
    const r = await this.call(
      'QueryChangedDiskAreas',
      `${moref('_this', vm)}${moref('snapshot', snapshot)}<deviceKey>${deviceKey}</deviceKey><startOffset>${startOffset}</startOffset><changeId>${xmlEscape(changeId)}</changeId>`,
    );
    const v = child(r, 'returnval');
    const areas = children(v, 'changedArea').map((a) => ({
      start: int(childText(a, 'start')) ?? -1,
      length: int(childText(a, 'length')) ?? -1,
    }));
    if (areas.some((a) => a.start < 0 || a.length <= 0))
      throw new ImportError(
        ErrorKind.Transfer,
        'vCenter answered QueryChangedDiskAreas with an invalid area',
      );
    return {
      startOffset: int(childText(v, 'startOffset')) ?? startOffset,
      length: int(childText(v, 'length')) ?? 0,
      areas,
    };
  }
}
