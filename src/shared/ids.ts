/**
 * The ids jitgate checks before they reach the database or a message: a value that fails here
 * is refused (or ignored) as input, never looked up.
 */

/** A UUID in its text form, any version, either case (grant, request and device ids). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

declare const checked: unique symbol;
/**
 * A string one of the checks below accepted. Branded so that a failed check leaves a `string`
 * a `string` (a plain `value is string` would narrow it to `never`).
 */
export type CheckedId<Kind extends string> = string & { readonly [checked]: Kind };

export function isUuid(value: string | undefined): value is CheckedId<'uuid'> {
  return value !== undefined && UUID.test(value);
}

/**
 * A Slack user id (`U…`, or `W…` on Enterprise Grid), as a pattern to build on: anchored in
 * SLACK_USER_ID, inside a mention in access-command-parser.ts, an HTML `pattern` in the console.
 */
export const SLACK_USER_ID_PATTERN = '[UW][A-Z0-9]{2,}';
export const SLACK_USER_ID = new RegExp(`^${SLACK_USER_ID_PATTERN}$`);

export function isSlackUserId(value: string | null | undefined): value is CheckedId<'slack-user'> {
  return typeof value === 'string' && SLACK_USER_ID.test(value);
}
