import { type Refusal, refuse } from './outcomes.ts';

/**
 * Free text people give jitgate (reasons, deny notes): what may be stored, and how it is
 * stored. Control characters are refused before anything reaches the database (PostgreSQL
 * rejects NUL, and its error would carry the statement into the log); characters that only
 * reorder how text reads are dropped, so what is stored reads as it is shown.
 */

/** C0 and C1 controls (Unicode's `Cc`) other than tab, line feed and carriage return. */
const CONTROL = /(?![\t\n\r])\p{Cc}/u;
/** Bidi marks, embeddings, overrides and isolates (U+202E shows `txt.exe` as `exe.txt`). */
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

/** Why `text` cannot be taken as the `what` (e.g. "reason"), or undefined when it can. */
export function checkUserText(text: string, what: string): Refusal | undefined {
  const found = CONTROL.exec(text);
  if (!found) return undefined;
  const code = found[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
  return refuse(
    'text_has_control_characters',
    `The ${what} contains a control character (U+${code}${code === '0000' ? ', NUL' : ''}); remove it and try again.`,
  );
}

/** `text` as stored: bidi controls dropped, line breaks as `\n`. */
export function cleanUserText(text: string): string {
  return text.replace(BIDI, '').replace(/\r\n?|[\u2028\u2029]/g, '\n');
}
