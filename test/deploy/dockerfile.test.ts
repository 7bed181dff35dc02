import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dockerfileProblems, dockerignoreProblems } from './dockerfile-rules.ts';

// No Docker engine runs here, so the image is never built in CI: these tests read the
// Dockerfile. The build itself checks the rest (its last RUN loads every module of the roles
// with production dependencies only).
const DOCKERFILE = readFileSync('Dockerfile', 'utf8');
const DOCKERIGNORE = readFileSync('.dockerignore', 'utf8');

/** The Dockerfile with one instruction line replaced (or removed, with an empty replacement). */
function edited(pattern: RegExp, replacement: string): string {
  expect(DOCKERFILE).toMatch(pattern);
  return DOCKERFILE.replace(pattern, replacement);
}

describe('the Dockerfile', () => {
  it('is multi-stage, installs production dependencies, runs as non-root with a HEALTHCHECK, copies no test code', () => {
    expect(dockerfileProblems(DOCKERFILE)).toEqual([]);
  });

  it('runs the CLI with node, whose package entry tsx is a runtime dependency', () => {
    expect(DOCKERFILE).toMatch(/^ENTRYPOINT \["node", "bin\/jitgate\.js"\]$/m);
    const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(readFileSync('bin/jitgate.js', 'utf8')).toContain("from 'tsx/esm/api'");
    expect(Object.keys(manifest.dependencies)).toContain('tsx');
  });

  it('notices a single stage', () => {
    const single = DOCKERFILE.slice(DOCKERFILE.lastIndexOf('\nFROM '));
    expect(dockerfileProblems(single)).toContain('is not multi-stage');
  });

  it('type-checks src without test/ in a stage the final one copies from', () => {
    expect(DOCKERFILE).toMatch(/^RUN npx tsc -p tsconfig\.build\.json --noEmit && rm -rf node_modules$/m);
    const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as { include: string[] };
    expect(build.include).toEqual(['src']);
  });

  it('notices src no longer type-checked, or type-checked in a stage a build skips', () => {
    expect(dockerfileProblems(edited(/npx tsc -p tsconfig\.build\.json --noEmit && /, ''))).toEqual([
      'no stage before the final one type-checks src (tsc -p tsconfig.build.json)',
    ]);
    expect(dockerfileProblems(edited(/^COPY --from=app \/app \.\/$/m, ''))).toEqual([
      'the final stage copies nothing from stage app, the one that type-checks src, so a build skips it',
    ]);
  });

  it('notices dev dependencies handed to the final stage by the type-check stage', () => {
    const keepsThem = edited(/ && rm -rf node_modules$/m, '');
    expect(dockerfileProblems(keepsThem)).toEqual([
      'the final stage copies dev dependencies from stage app (/app holds node_modules)',
    ]);
    // Taking named application paths from such a stage is fine: node_modules stays behind.
    const namedPaths = keepsThem.replace(/^COPY --from=app \/app \.\/$/m, 'COPY --from=app /app/src ./src');
    expect(dockerfileProblems(namedPaths)).toEqual([]);
    expect(dockerfileProblems(`${keepsThem}COPY --from=app /app/node_modules ./node_modules\n`).at(-1)).toBe(
      'the final stage copies dev dependencies from stage app (/app/node_modules holds node_modules)',
    );
  });

  it('notices dev dependencies in the final stage', () => {
    expect(dockerfileProblems(edited(/npm ci --omit=dev/, 'npm ci'))).toEqual([
      'the final stage does not run npm ci --omit=dev',
      'the final stage installs dev dependencies',
    ]);
  });

  it('notices a root user, or none', () => {
    expect(dockerfileProblems(edited(/^USER .*$/m, 'USER root'))).toEqual([
      'the final stage runs as root (USER root)',
    ]);
    expect(dockerfileProblems(edited(/^USER .*$/m, 'USER 0:0'))).toEqual([
      'the final stage runs as root (USER 0)',
    ]);
    expect(dockerfileProblems(edited(/^USER .*$/m, ''))).toEqual(['the final stage runs as root (no USER)']);
  });

  it('notices a missing HEALTHCHECK, or one that needs curl', () => {
    const without = edited(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, '');
    expect(dockerfileProblems(without)).toEqual(['the final stage has no HEALTHCHECK']);
    expect(dockerfileProblems(`${without}HEALTHCHECK NONE\n`)).toEqual([
      'the final stage has no HEALTHCHECK',
    ]);
    expect(dockerfileProblems(`${without}HEALTHCHECK CMD curl -f http://127.0.0.1:3000/healthz\n`)).toEqual([
      'the HEALTHCHECK does not ask /healthz with node',
    ]);
  });

  it('notices test code copied into the image, or the whole context', () => {
    expect(
      dockerfileProblems(edited(/^COPY src \.\/src$/m, 'COPY src ./src\nCOPY test/fakes ./test/fakes')),
    ).toEqual(['copies test code (COPY test/fakes)']);
    expect(dockerfileProblems(edited(/^COPY src \.\/src$/m, 'COPY . .'))).toEqual([
      'copies ., which is not among the files the image ships',
    ]);
    expect(dockerfileProblems(edited(/^COPY src \.\/src$/m, 'ADD ./test /app/test'))).toEqual([
      'copies test code (ADD test)',
    ]);
  });
});

describe('.dockerignore', () => {
  it('keeps test code, git, dependencies, local data and build output out of the build context', () => {
    expect(dockerignoreProblems(DOCKERIGNORE)).toEqual([]);
  });

  it('notices an entry missing or let back in', () => {
    expect(dockerignoreProblems(DOCKERIGNORE.replace(/^test$/m, ''))).toEqual([
      '.dockerignore does not exclude test',
    ]);
    expect(dockerignoreProblems(`${DOCKERIGNORE}!test/fakes\n`)).toEqual([
      '.dockerignore lets part of test back in',
    ]);
  });
});
