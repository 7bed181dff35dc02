/**
 * Scope rules: `METHOD /path/glob`. `*` as method means any method. In the path,
 * a segment `*` matches exactly one non-empty segment, `**` matches zero or more
 * segments, and `*` inside a segment (`v*.json`) matches any run of characters
 * within that segment. Matching is over a path the proxy has already normalised
 * (decoded once, no `.`/`..`, no empty segments but an optional trailing slash).
 */

export const HTTP_METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type HttpMethod = (typeof HTTP_METHODS)[number];
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

type SegmentPattern =
  | { kind: 'literal'; text: string }
  | { kind: 'any-one' }
  | { kind: 'any-depth' }
  | { kind: 'wildcard'; regex: RegExp };

export interface ScopeRule {
  source: string;
  method: HttpMethod | '*';
  segments: SegmentPattern[];
}

export type ParseRuleResult = { ok: true; rule: ScopeRule } | { ok: false; message: string };

const SEGMENT_CHARS = /^[A-Za-z0-9._~!$&'()+,;=:@*-]+$/;

export function parseScopeRule(source: string): ParseRuleResult {
  const match = /^(\S+) +(\/\S*)$/.exec(source.trim());
  if (!match) return { ok: false, message: 'expects "METHOD /path", e.g. "GET /invoices/**"' };
  const method = match[1]!.toUpperCase();
  if (method !== '*' && !(HTTP_METHODS as readonly string[]).includes(method)) {
    return { ok: false, message: `unknown method "${match[1]}" (expects ${HTTP_METHODS.join(', ')} or *)` };
  }
  const path = match[2]!;
  const rawSegments = path === '/' ? [] : path.slice(1).split('/');
  const segments: SegmentPattern[] = [];
  for (const raw of rawSegments) {
    if (raw === '')
      return { ok: false, message: 'a path pattern has no empty segments ("//" or a trailing "/")' };
    if (raw === '.' || raw === '..')
      return { ok: false, message: 'a path pattern cannot contain "." or ".."' };
    if (!SEGMENT_CHARS.test(raw))
      return { ok: false, message: `segment "${raw}" has characters a path cannot` };
    if (raw === '**') segments.push({ kind: 'any-depth' });
    else if (raw === '*') segments.push({ kind: 'any-one' });
    else if (raw.includes('**')) return { ok: false, message: '"**" must be a whole segment' };
    else if (raw.includes('*')) segments.push({ kind: 'wildcard', regex: wildcardRegex(raw) });
    else segments.push({ kind: 'literal', text: raw });
  }
  return { ok: true, rule: { source: `${method} ${path}`, method: method as HttpMethod | '*', segments } };
}

function wildcardRegex(segment: string): RegExp {
  const escaped = segment
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${escaped}$`);
}

/** Split a normalised path into segments; a trailing slash adds no segment. */
export function pathSegments(path: string): string[] {
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed === '' ? [] : trimmed.slice(1).split('/');
}

function matchSegments(patterns: SegmentPattern[], pi: number, segments: string[], si: number): boolean {
  if (pi === patterns.length) return si === segments.length;
  const pattern = patterns[pi]!;
  if (pattern.kind === 'any-depth') {
    for (let next = si; next <= segments.length; next++) {
      if (matchSegments(patterns, pi + 1, segments, next)) return true;
    }
    return false;
  }
  if (si === segments.length) return false;
  const segment = segments[si]!;
  const ok =
    pattern.kind === 'literal'
      ? pattern.text === segment
      : pattern.kind === 'any-one'
        ? segment.length > 0
        : pattern.regex.test(segment);
  return ok && matchSegments(patterns, pi + 1, segments, si + 1);
}

function ruleAllows(rule: ScopeRule, method: string, segments: string[]): boolean {
  if (rule.method !== '*' && rule.method !== method) {
    // HEAD is a GET without a body: a rule that allows GET allows HEAD.
    if (!(rule.method === 'GET' && method === 'HEAD')) return false;
  }
  return matchSegments(rule.segments, 0, segments, 0);
}

/** Whether any rule allows this method on this normalised path. */
export function rulesAllow(rules: readonly ScopeRule[], method: string, path: string): boolean {
  const segments = pathSegments(path);
  const upper = method.toUpperCase();
  return rules.some((rule) => ruleAllows(rule, upper, segments));
}

/**
 * A rule that lets a state-changing method reach paths it does not name: every segment is `*`
 * or `**` in any mix, so the rule says nothing about where the write lands.
 * Allowed only when the scope says so; a rule with one literal or partial segment is not.
 */
export function isUnrestrictedWrite(rule: ScopeRule): boolean {
  const writes = rule.method === '*' || !SAFE_METHODS.has(rule.method);
  return (
    writes &&
    rule.segments.length > 0 &&
    rule.segments.every((s) => s.kind === 'any-depth' || s.kind === 'any-one')
  );
}

export function isReadOnlyRule(rule: ScopeRule): boolean {
  return rule.method !== '*' && SAFE_METHODS.has(rule.method);
}
