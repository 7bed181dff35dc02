import { DockerfileParser, type Instruction, ModifiableInstruction } from 'dockerfile-ast';

/**
 * What the image promises, read from the Dockerfile (no Docker engine runs here to build it):
 * several stages; an earlier one type-checks src on its own (without test/) and the final one
 * copies from it, so it is built; the final one installs production dependencies only (none
 * come in through a copy from an earlier stage), runs as a non-root USER and has a HEALTHCHECK
 * that asks /healthz with Node; nothing of test/ is copied.
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
  /** `FROM … AS <name>`; undefined for an unnamed stage. */
  name: string | undefined;
  instructions: Instruction[];
}

function stages(text: string): Stage[] {
  const result: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const [, as, name] = argumentsOf(instruction);
      result.push({ name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    }
    result.at(-1)?.instructions.push(instruction);
  }
  return result;
}

const runs = (stage: Stage) =>
  stage.instructions.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');

const TYPE_CHECK = /\btsc\b[^&;|]*-p\s+tsconfig\.build\.json/;

/** Whether the stage ends with the dev dependencies its own `npm ci` installed still in node_modules. */
function leavesDevDependencies(stage: Stage): boolean {
  let present = false;
  for (const command of runs(stage)) {
    for (const step of command.split(/&&|;/)) {
      if (/\bnpm ci\b/.test(step) && !/--omit=dev\b/.test(step)) present = true;
      if (/\brm\s+-[a-z]*r[a-z]*\s+(\.\/)?node_modules\/?(\s|$)/.test(step)) present = false;
    }
  }
  return present;
}

function workdirOf(stage: Stage): string {
  const workdir = stage.instructions.filter((i) => i.getKeyword() === 'WORKDIR').at(-1);
  return workdir ? (argumentsOf(workdir)[0] ?? '/').replace(/\/+$/, '') : '';
}

function copiedFrom(instruction: Instruction): string | undefined {
  if (!(instruction instanceof ModifiableInstruction)) return undefined;
  return (
    instruction
      .getFlags()
      .find((flag) => flag.getName() === 'from')
      ?.getValue() ?? undefined
  );
}

/** What an earlier stage must do for the final one: type-check src, and hand over no dev dependencies. */
function buildStageProblems(all: Stage[]): string[] {
  const problems: string[] = [];
  const final = all.at(-1);
  if (!final) return problems;
  const earlier = all.slice(0, -1);
  const copies = final.instructions
    .map((instruction) => ({ instruction, from: copiedFrom(instruction) }))
    .filter((c): c is { instruction: Instruction; from: string } => c.from !== undefined);
  const checker = earlier.find((stage) => runs(stage).some((command) => TYPE_CHECK.test(command)));
  if (!checker) problems.push('no stage before the final one type-checks src (tsc -p tsconfig.build.json)');
  else if (!copies.some((c) => c.from === checker.name)) {
    problems.push(
      `the final stage copies nothing from stage ${checker.name ?? '(unnamed)'}, the one that type-checks src, so a build skips it`,
    );
  }
  for (const { instruction, from } of copies) {
    const stage = earlier.find((s) => s.name === from);
    if (!stage || !leavesDevDependencies(stage)) continue;
    const root = workdirOf(stage);
    for (const source of argumentsOf(instruction).slice(0, -1)) {
      const path = source.replace(/\/+$/, '');
      if (path === root || path === '' || path === '.' || path.includes('node_modules')) {
        problems.push(
          `the final stage copies dev dependencies from stage ${from} (${source} holds node_modules)`,
        );
      }
    }
  }
  return problems;
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
  else problems.push(...buildStageProblems(all));
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
const IGNORED = ['test', '.git', 'node_modules', '.jitgate', 'dist'];

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
