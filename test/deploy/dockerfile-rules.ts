import { DockerfileParser, type Instruction, ModifiableInstruction } from 'dockerfile-ast';

/**
 * What the image promises, read from the Dockerfile (no Docker engine runs here to build it):
 * several stages; the final one installs production dependencies only, runs as a non-root
 * USER and has a HEALTHCHECK that asks /healthz with Node; nothing of test/ is copied.
 */

/** Everything the image may take from the build context. */
const SHIPPED = [
  /^src\/?$/,
  /^bin\/?$/,
  /^drizzle\/?$/,
  /^examples\/?$/,
  /^manifest\.yml$/,
  /^package(-lock)?\.json$/,
  /^tsconfig[\w.]*\.json$/,
];
const ROOT_USERS = new Set(['root', '0']);

interface Stage {
  instructions: Instruction[];
}

function stages(text: string): Stage[] {
  const result: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction.getKeyword() === 'FROM') result.push({ instructions: [] });
    result.at(-1)?.instructions.push(instruction);
  }
  return result;
}

function argumentsOf(instruction: Instruction): string[] {
  return instruction.getArguments().map((argument) => argument.getValue());
}

function copiesFromContext(instruction: Instruction): boolean {
  if (!(instruction instanceof ModifiableInstruction)) return true;
  return !instruction.getFlags().some((flag) => flag.getName() === 'from');
}

/** One line per broken promise; empty when the Dockerfile keeps them all. */
export function dockerfileProblems(text: string): string[] {
  const all = stages(text);
  const problems: string[] = [];
  if (all.length < 2) problems.push('is not multi-stage');
  const final = all.at(-1)?.instructions ?? [];

  const installs = final.filter(
    (i) => i.getKeyword() === 'RUN' && /\bnpm ci\b/.test(i.getArgumentsContent() ?? ''),
  );
  if (!installs.some((i) => /--omit=dev\b/.test(i.getArgumentsContent() ?? ''))) {
    problems.push('the final stage does not run npm ci --omit=dev');
  }
  if (installs.some((i) => !/--omit=dev\b/.test(i.getArgumentsContent() ?? ''))) {
    problems.push('the final stage installs dev dependencies');
  }

  const user = final.filter((i) => i.getKeyword() === 'USER').at(-1);
  const name = user ? ((argumentsOf(user)[0] ?? '').split(':')[0] ?? '') : '';
  if (!user) problems.push('the final stage runs as root (no USER)');
  else if (ROOT_USERS.has(name)) problems.push(`the final stage runs as root (USER ${name})`);

  const healthcheck = final.filter((i) => i.getKeyword() === 'HEALTHCHECK').at(-1);
  const probe = healthcheck?.getRawArgumentsContent() ?? '';
  if (!healthcheck || /^\s*NONE\b/i.test(probe.replace(/--\S+\s+/g, ''))) {
    problems.push('the final stage has no HEALTHCHECK');
  } else if (!/\bnode\b/.test(probe) || !probe.includes('/healthz') || /\b(curl|wget)\b/.test(probe)) {
    problems.push('the HEALTHCHECK does not ask /healthz with node');
  }

  for (const instruction of all.flatMap((s) => s.instructions)) {
    const keyword = instruction.getKeyword();
    if ((keyword !== 'COPY' && keyword !== 'ADD') || !copiesFromContext(instruction)) continue;
    const sources = argumentsOf(instruction)
      .slice(0, -1)
      .map((s) => s.replace(/^\.\//, ''));
    for (const source of sources) {
      if (/^test(\/|$)/.test(source)) problems.push(`copies test code (${keyword} ${source})`);
      else if (!SHIPPED.some((allowed) => allowed.test(source))) {
        problems.push(`copies ${source}, which is not among the files the image ships`);
      }
    }
  }
  return problems;
}

/** What .dockerignore must keep out of the build context. */
export const IGNORED = ['test', '.git', 'node_modules', '.jitgate', 'dist'];

export function dockerignoreProblems(text: string): string[] {
  const patterns = new Set(
    text
      .split('\n')
      .map((line) => line.trim().replace(/^\/|\/$/g, ''))
      .filter((line) => line !== '' && !line.startsWith('#')),
  );
  const reincluded = [...patterns].filter((p) => p.startsWith('!'));
  return IGNORED.flatMap((entry) => {
    if (!patterns.has(entry)) return [`.dockerignore does not exclude ${entry}`];
    if (reincluded.some((p) => p === `!${entry}` || p.startsWith(`!${entry}/`))) {
      return [`.dockerignore lets part of ${entry} back in`];
    }
    return [];
  });
}
