/**
 * The one place that builds what jitgate shows in Slack, by surface. Everything a user typed
 * is escaped before it lands in mrkdwn and cut after, so a reason cannot ping, link, or break
 * a limit; every surface stays within Slack's Block Kit limits.
 */
export * from './alerts.ts';
export * from './answers.ts';
export * from './approval.ts';
export * from './choices.ts';
export * from './devices.ts';
export * from './dms.ts';
export * from './fallbacks.ts';
export * from './home.ts';
export * from './ids.ts';
export * from './kit.ts';
export * from './lists.ts';
export * from './refusals.ts';
export * from './text.ts';
export * from './views.ts';
