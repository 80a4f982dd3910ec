import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { child, childText, parseXml, xmlEscape } from './xml.ts';

void describe('parseXml', () => {
  void it('reads elements, attributes, text, entities and CDATA; drops namespace prefixes', () => {
    const root = parseXml(
      '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="x"><soapenv:Body><!-- c --><r a="1 &amp; 2">' +
        'x &lt;y&gt; &#65;&#x42;<![CDATA[<raw>]]><e/></r></soapenv:Body></soapenv:Envelope>',
      'test',
    );
    assert.equal(root.name, 'Envelope');
    const r = child(child(root, 'Body'), 'r')!;
    assert.equal(r.attrs.a, '1 & 2');
    assert.equal(r.text, 'x <y> AB<raw>');
    assert.equal(childText(r, 'e'), '');
  });

  void it('refuses a DOCTYPE (no entity definitions, no expansion) and malformed documents, naming the source', () => {
    assert.throws(
      () => parseXml('<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "the engine's answer"),
      /the engine's answer is not well-formed XML: document type declarations are not accepted/,
    );
    assert.throws(() => parseXml('<a><b></a>', 't'), /unexpected <\/a>/);
    assert.throws(() => parseXml('<a>', 't'), /<a> is not closed/);
    assert.throws(() => parseXml('<a/><b/>', 't'), /more than one root element/);
    assert.throws(() => parseXml('<a>&bogus;</a>', 't'), /unknown entity &bogus;/);
    assert.throws(() => parseXml('x'.repeat(100), 't', 10), /larger than 10 bytes/);
  });

  void it('escapes what it writes', () => {
    assert.equal(xmlEscape(`a<b>&"'`), 'a&lt;b&gt;&amp;&quot;&apos;');
    assert.equal(parseXml(`<v>${xmlEscape('p<a&ss')}</v>`, 't').text, 'p<a&ss');
  });
});
