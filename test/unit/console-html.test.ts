import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { barChart, timeChart } from '../../src/console/charts.ts';
import { escapeHtml, html } from '../../src/console/html.ts';

const HOSTILE = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "' onmouseover='alert(1)",
  '`$'.concat('{alert(1)}`'),
  '</textarea><svg onload=alert(1)>',
  '&lt;already&gt; &amp; escaped',
  'javascript:alert(1)',
];

/** What the text becomes once a browser reads the escaped HTML back. */
const decodeEntities = (text: string) =>
  text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&#96;', '`')
    .replaceAll('&amp;', '&');

describe('the one HTML escaping helper', () => {
  it.each(HOSTILE)('writes %s as text, in content and in a quoted attribute', (hostile) => {
    const out = html`<p title="${hostile}">${hostile}</p>`.text;
    expect(out).not.toMatch(/<(script|img|svg)/i);
    expect(out.match(/"/g)?.length).toBe(2);
    const content = out.slice(out.indexOf('>') + 1, out.lastIndexOf('</p>'));
    expect(decodeEntities(content)).toBe(hostile);
  });

  it('leaves no markup character unescaped, and round-trips any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const escaped = escapeHtml(text);
        expect(escaped).not.toMatch(/[<>"'`]/);
        expect(decodeEntities(escaped)).toBe(text);
      }),
    );
  });

  it('nests fragments built by the tag without escaping them twice, and escapes arrays item by item', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p>${inner}${['<a>', inner]}</p>`.text).toBe(
      '<p><b>&lt;i&gt;</b>&lt;a&gt;<b>&lt;i&gt;</b></p>',
    );
  });

  it('charts escape their labels and keep their numbers in a table', () => {
    const svg = barChart({
      title: 'Hits <b>',
      unit: 'calls',
      bars: [{ label: '<script>x</script>', value: 1234 }],
    }).text;
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&lt;script&gt;');
    expect(svg).toContain('<td>1,234</td>');
    const from = new Date('2026-01-05T00:00:00Z');
    const time = timeChart({
      title: 'Calls',
      series: [{ name: 'allowed calls', className: 's-allowed' }],
      buckets: [{ start: from, values: [7] }],
      from,
      to: new Date('2026-01-06T00:00:00Z'),
      bucketMs: 3600_000,
    }).text;
    expect(time).toContain('role="img"');
    expect(time).toContain('<th scope="row">2026-01-05 00:00</th><td>7</td>');
    expect(time).not.toMatch(/style=/);
  });
});
