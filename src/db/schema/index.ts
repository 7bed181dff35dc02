/**
 * The schema, one file per table (drizzle-kit reads it from here). Table order follows
 * the foreign keys: requests before the approvals and grants that reference them.
 */
export * from './access-requests.ts';
export * from './approvals.ts';
export * from './audit-events.ts';
export * from './console-sessions.ts';
export * from './devices.ts';
export * from './grants.ts';
export * from './outbox.ts';
export * from './person-names.ts';
export * from './signing-keys.ts';
