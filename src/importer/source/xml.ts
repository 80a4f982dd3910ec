/**
 * A small, strict XML reader for the answers of the two XML APIs the importer talks to: the oVirt engine's REST
 * API (imageio source) and vSphere's SOAP API (vddk source). Elements, attributes, text, CDATA, comments, the XML
 * declaration and the five predefined entities plus character references; a DOCTYPE is refused (no entity
 * definitions, so no entity expansion), and so is anything over `maxBytes`. Namespace prefixes are dropped from
 * names (`soapenv:Body` → `Body`): both APIs use fixed namespaces.
 */
import { ErrorKind, ImportError } from '../errors.ts';

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own text (its text nodes joined; children's text not included). */
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string, what: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw bad(what, `unknown entity ${m}`);
    return v;
  });
}

function bad(what: string, why: string): ImportError {
  return new ImportError(ErrorKind.Transfer, `${what} is not well-formed XML: ${why}`);
}

const local = (name: string): string => name.slice(name.indexOf(':') + 1);

/** Parses `text` into its root element. `what` names the document in errors ("the oVirt engine's answer"). */
export function parseXml(text: string, what: string, maxBytes = 16 << 20): XmlElement {
  if (text.length > maxBytes) throw bad(what, `larger than ${maxBytes} bytes`);
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let i = 0;
  const addText = (t: string): void => {
    const top = stack.at(-1);
    if (top) top.text += t;
    else if (t.trim() !== '') throw bad(what, 'text outside the root element');
  };
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt < 0) {
      addText(decode(text.slice(i), what));
      break;
    }
    if (lt > i) addText(decode(text.slice(i, lt), what));
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt + 4);
      if (end < 0) throw bad(what, 'unterminated comment');
      i = end + 3;
    } else if (text.startsWith('<![CDATA[', lt)) {
      const end = text.indexOf(']]>', lt + 9);
      if (end < 0) throw bad(what, 'unterminated CDATA section');
      addText(text.slice(lt + 9, end));
      i = end + 3;
    } else if (text.startsWith('<?', lt)) {
      const end = text.indexOf('?>', lt + 2);
      if (end < 0) throw bad(what, 'unterminated processing instruction');
      i = end + 2;
    } else if (text.startsWith('<!', lt)) {
      throw bad(what, 'document type declarations are not accepted');
    } else if (text[lt + 1] === '/') {
      const end = text.indexOf('>', lt);
      if (end < 0) throw bad(what, 'unterminated end tag');
      const name = local(text.slice(lt + 2, end).trim());
      const top = stack.pop();
      if (!top || top.name !== name) throw bad(what, `unexpected </${name}>`);
      i = end + 1;
    } else {
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(
        text.slice(lt, lt + 64 * 1024),
      );
      if (!m) throw bad(what, `malformed tag at offset ${lt}`);
      const el: XmlElement = { name: local(m[1]!), attrs: {}, children: [], text: '' };
      for (const a of m[2]!.matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        el.attrs[local(a[1]!)] = decode(a[2] ?? a[3] ?? '', what);
      }
      const parent = stack.at(-1);
      if (parent) parent.children.push(el);
      else if (root) throw bad(what, 'more than one root element');
      else root = el;
      if (m[3] !== '/') stack.push(el);
      i = lt + m[0].length;
    }
  }
  if (stack.length > 0) throw bad(what, `<${stack.at(-1)!.name}> is not closed`);
  if (!root) throw bad(what, 'no element');
  return root;
}

/** The first child named `name`. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

/** Every child named `name`. */
export function children(el: XmlElement | undefined, name: string): XmlElement[] {
  return el?.children.filter((c) => c.name === name) ?? [];
}

/** The trimmed text of the child `name` (undefined when absent). */
export function childText(el: XmlElement | undefined, name: string): string | undefined {
  const c = child(el, name);
  return c === undefined ? undefined : c.text.trim();
}

/** Escapes text for an XML element or attribute value. */
export function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${Object.entries(ENTITIES).find(([, v]) => v === c)![0]};`);
}
