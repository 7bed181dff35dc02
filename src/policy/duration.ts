/** Durations as written in policy files and commands: `30s`, `15m`, `2h`, `1d` (whole units, one unit). */

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
type Unit = keyof typeof UNIT_SECONDS;

/** Anything longer is a typo, not a policy: 90 days. */
export const MAX_DURATION_SECONDS = 90 * 86_400;

const DURATION_PATTERN = /^([1-9][0-9]{0,6})([smhd])$/;

/** Parse a duration into seconds, or undefined when it is not of the form `<n><s|m|h|d>`. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim().toLowerCase());
  if (!match) return undefined;
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] as Unit];
  return seconds <= MAX_DURATION_SECONDS ? seconds : undefined;
}

/** The shortest exact way to write a duration (`5400` → `90m`, `7200` → `2h`). */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const size = UNIT_SECONDS[unit];
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** A reader-friendly approximation for messages: `1h 30m`, `45s`. */
export function describeDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.round(totalSeconds));
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [d && `${d}d`, h && `${h}h`, m && `${m}m`, !d && !h && s && `${s}s`].filter(Boolean);
  return parts.length > 0 ? parts.slice(0, 2).join(' ') : '0s';
}

const SIZE_PATTERN = /^([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb)?$/i;
const SIZE_UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** Byte sizes like `10MB`, `4KB`, `512` (binary units, as operators expect for limits). */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2]?.toLowerCase() ?? 'b') as keyof typeof SIZE_UNITS;
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[unit]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
