import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { toPolicy } from './compile.ts';
import { policyFileSchema } from './file-schema.ts';
import type { CaFileReader, CredentialResolver, Policy, ResourcePolicy } from './types.ts';

export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`policy ${file} is not valid:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'PolicyError';
  }
}

/** `resources.billing-api.scopes.read.allow[1]` */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, index) =>
      typeof part === 'number' ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`,
    )
    .join('');
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Why a CA bundle is unusable, or undefined when every certificate in it parses. Checked here
 * because Node's TLS stack silently ignores a bundle it cannot parse, which would surface only
 * later as every upstream call failing.
 */
function caBundleProblem(pem: string): string | undefined {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate';
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `certificate ${index + 1} is not a valid X.509 certificate`;
    }
  }
  return undefined;
}

/**
 * Parse policy text. Every problem names the file, the line and the path of the
 * value at fault; secrets read from the environment or files never appear in errors.
 */
export function parsePolicy(
  text: string,
  options: { file: string; env: NodeJS.ProcessEnv; baseDir?: string },
): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const lineOf = (offset: number | undefined) =>
    offset === undefined ? '?' : String(lineCounter.linePos(offset).line);
  if (doc.errors.length > 0) {
    throw new PolicyError(
      options.file,
      doc.errors.map((e) => `${options.file}:${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`),
    );
  }
  const lineOfPath = (path: readonly PropertyKey[]): string => {
    // The deepest node that exists: a missing key points at its parent.
    for (let depth = path.length; depth >= 0; depth--) {
      const node = doc.getIn(path.slice(0, depth) as (string | number)[], true);
      if (isNode(node) && node.range) return lineOf(node.range[0]);
    }
    return '1';
  };
  const parsed = policyFileSchema.safeParse(doc.toJS({ maxAliasCount: 50 }) ?? {});
  if (!parsed.success) {
    throw new PolicyError(
      options.file,
      parsed.error.issues.map((issue) => {
        const where = formatPath(issue.path) || '(top level)';
        if (issue.code === 'unrecognized_keys') {
          const keys = issue.keys.map((k) => `"${k}"`).join(', ');
          const line = lineOfPath([...issue.path, issue.keys[0] ?? '']);
          return `${options.file}:${line}: ${where}: unknown key ${keys} (check the spelling against the README)`;
        }
        return `${options.file}:${lineOfPath(issue.path)}: ${where}: ${issue.message}`;
      }),
    );
  }
  const problems: string[] = [];
  const resolveCredential: CredentialResolver = (written, path) => {
    const where = `${options.file}:${lineOfPath(path)}: ${formatPath(path)}`;
    if ('file' in written) {
      const filePath = isAbsolute(written.file)
        ? written.file
        : resolve(options.baseDir ?? '.', written.file);
      try {
        return readFileSync(filePath, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        problems.push(
          `${where}.file: cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        );
        return '';
      }
    }
    return written.value.replace(ENV_REFERENCE, (_whole, name: string) => {
      const value = options.env[name];
      if (value === undefined || value === '') {
        problems.push(`${where}.value: environment variable ${name} is not set`);
        return '';
      }
      return value;
    });
  };
  const readCaFile: CaFileReader = (file, path) => {
    const where = `${options.file}:${lineOfPath(path)}: ${formatPath(path)}`;
    const filePath = isAbsolute(file) ? file : resolve(options.baseDir ?? '.', file);
    let pem: string;
    try {
      pem = readFileSync(filePath, 'utf8');
    } catch (error) {
      problems.push(
        `${where}: cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
      return '';
    }
    const problem = caBundleProblem(pem);
    if (problem) problems.push(`${where}: ${filePath} ${problem}`);
    return pem;
  };
  const policy = toPolicy(parsed.data, resolveCredential, readCaFile);
  // The proxy picks an upstream's TLS settings by origin when it connects, so resources that
  // share an origin must agree on them.
  const tlsByOrigin = new Map<string, ResourcePolicy>();
  for (const resource of Object.values(policy.resources)) {
    const origin = new URL(resource.upstream).origin;
    const first = tlsByOrigin.get(origin);
    if (!first) {
      tlsByOrigin.set(origin, resource);
      continue;
    }
    const disagreements = [
      { key: 'ca_file', differs: first.upstreamCa !== resource.upstreamCa, what: 'CA bundle' },
      {
        key: 'tls_server_name',
        differs: first.upstreamServerName !== resource.upstreamServerName,
        what: 'tls_server_name',
      },
    ];
    for (const { key, differs, what } of disagreements) {
      if (!differs) continue;
      const path = ['resources', resource.name, key];
      problems.push(
        `${options.file}:${lineOfPath(path)}: ${formatPath(path)}: resources ${first.name} and ${resource.name} share the upstream ${origin} and must name the same ${what} (or none)`,
      );
    }
  }
  if (problems.length > 0) throw new PolicyError(options.file, problems);
  return policy;
}

export function loadPolicyFile(file: string, env: NodeJS.ProcessEnv): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(file, [
      `${file}: cannot read the policy file (${(error as NodeJS.ErrnoException).code})`,
    ]);
  }
  return parsePolicy(text, { file, env, baseDir: resolve(file, '..') });
}
