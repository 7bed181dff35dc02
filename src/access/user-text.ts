import { type FreeTextField, type Refusal, refuse } from './outcomes.ts';

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

/** Why `text` cannot be taken as the `field`, or undefined when it can (or none was given). */
export function checkUserText(text: string | undefined, field: FreeTextField): Refusal | undefined {
  if (text === undefined) return undefined;
  const found = CONTROL.exec(text);
  if (!found) return undefined;
  return refuse({ code: 'text_has_control_characters', field, codePoint: found[0].charCodeAt(0) });
}

/** `text` as stored: bidi controls dropped, line breaks as `\n`. */
export function cleanUserText(text: string): string {
  return text.replace(BIDI, '').replace(/\r\n?|[\u2028\u2029]/g, '\n');
}
