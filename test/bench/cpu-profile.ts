/**
 * Where a proxy's CPU goes per call, from a V8 CPU profile of the process under load
 * (node:inspector's sampling profiler, started and stopped over the bench child's IPC).
 *
 * Each sample is charged to one stage: walking from the sampled frame towards the root, the
 * first frame whose script is one of ours or a library we call decides (STAGES, first rule that
 * matches wins). So Node's own code (sockets, streams, crypto's JS wrapper, JSON.stringify) is
 * charged to whoever called it — a hash to the chain, a socket write to the forward — and only
 * what runs with none of our frames above it (the HTTP parser's callbacks before fastify, the
 * event loop) is "Node core"; GC and V8's own "(program)" ticks are apart.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Stage names in the order the bench prints them. */
export const STAGE_NAMES = [
  'token verify (src/tokens, jose)',
  'DPoP proof check (src/tokens/dpop*.ts, node:crypto verify)',
  'grant lookup (active-grants)',
  'scope match + authorize (policy, normalize-path, authorize)',
  'rate limit + quota (limits, rate-limit, quota)',
  'forward (forward-*, request-headers, reply-from, undici)',
  'audit record build (call.ts, call-row.ts)',
  'chain hash (audit/chain.ts)',
  'database write (appender, chain-append, drizzle, postgres.js)',
  'fastify (routing, request/reply)',
  'jitgate proxy handler (server.ts, other src/)',
  'Node core with no caller of ours (HTTP parser, sockets, timers)',
  'garbage collection',
  'V8 (program)',
] as const;
type Stage = (typeof STAGE_NAMES)[number];

const STAGES: [Stage, (url: string, fn: string) => boolean][] = [
  // Before the tokens rule, which would take it: a bound call's proof apart from its token.
  [STAGE_NAMES[1], (u) => u.includes('/src/tokens/dpop')],
  [STAGE_NAMES[0], (u) => u.includes('/src/tokens/') || u.includes('/node_modules/jose/')],
  [STAGE_NAMES[2], (u) => u.includes('/src/proxy/active-grants')],
  [
    STAGE_NAMES[3],
    (u) =>
      u.includes('/src/policy/') || u.includes('/src/proxy/normalize-path') || u.includes('/authorize.ts'),
  ],
  [
    STAGE_NAMES[4],
    (u) =>
      u.includes('/src/proxy/limits/') ||
      u.includes('/src/proxy/rate-limit') ||
      u.includes('/src/proxy/quota'),
  ],
  [
    STAGE_NAMES[6],
    (u, fn) =>
      u.includes('/src/proxy/call.ts') || u.includes('/src/audit/call-row.ts') || fn === 'callAuditEvent',
  ],
  [STAGE_NAMES[7], (u) => u.includes('/src/audit/chain.ts')],
  [
    STAGE_NAMES[8],
    (u) =>
      u.includes('/src/audit/') ||
      u.includes('/src/db/') ||
      u.includes('/node_modules/postgres/') ||
      u.includes('/node_modules/drizzle-orm/') ||
      u.includes('/src/access/quota'),
  ],
  [
    STAGE_NAMES[5],
    (u) =>
      u.includes('/src/proxy/forward') ||
      u.includes('/src/proxy/direct-forward') ||
      u.includes('/src/proxy/request-headers') ||
      u.includes('/src/proxy/upstream-') ||
      u.includes('/src/proxy/response-') ||
      u.includes('/@fastify/reply-from/') ||
      u.includes('/node_modules/undici/'),
  ],
  [
    STAGE_NAMES[9],
    (u) =>
      u.includes('/node_modules/fastify/') ||
      u.includes('/node_modules/find-my-way/') ||
      u.includes('/node_modules/avvio/') ||
      u.includes('/node_modules/@fastify/') ||
      u.includes('/node_modules/light-my-request/'),
  ],
  [STAGE_NAMES[10], (u) => u.includes('/src/') && !u.includes('/test/bench/')],
];

/** Microseconds of CPU per stage over the profile. */
function stageMicros(profile: CpuProfile): Map<Stage, number> {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stageOf = new Map<number, Stage | 'idle'>();
  const classify = (id: number): Stage | 'idle' => {
    const known = stageOf.get(id);
    if (known) return known;
    const fn = byId.get(id)!.callFrame.functionName;
    let stage: Stage | 'idle' | undefined;
    if (fn === '(idle)') stage = 'idle';
    else if (fn === '(garbage collector)') stage = STAGE_NAMES[12];
    else if (fn === '(program)') stage = STAGE_NAMES[13];
    for (let at: number | undefined = id; stage === undefined && at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      for (const [name, test] of STAGES) {
        if (test(frame.url, frame.functionName)) {
          stage = name;
          break;
        }
      }
    }
    stage ??= STAGE_NAMES[11];
    stageOf.set(id, stage);
    return stage;
  };
  const out = new Map<Stage, number>(STAGE_NAMES.map((s) => [s, 0]));
  for (let i = 0; i < profile.samples.length; i++) {
    const stage = classify(profile.samples[i]!);
    // timeDeltas[i] is the time before sample i; the sample covers the next delta (≈ equal).
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    if (stage !== 'idle') out.set(stage, out.get(stage)! + us);
  }
  return out;
}

/** A sampling profiler on this process, driven over IPC by the bench. */
export function createProfiler() {
  let session: Session | undefined;
  return {
    async start(): Promise<Record<string, never>> {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
      return {};
    },
    async stop(): Promise<{ stages: [string, number][]; wallMicros: number }> {
      if (!session) throw new Error('profiler not started');
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
      session.disconnect();
      session = undefined;
      // For a closer look (e.g. in Chrome's DevTools): the raw profile, when asked for.
      const dump = process.env.BENCH_PROFILE_FILE;
      if (dump) writeFileSync(dump, JSON.stringify(profile));
      return { stages: [...stageMicros(profile)], wallMicros: profile.endTime - profile.startTime };
    },
  };
}
