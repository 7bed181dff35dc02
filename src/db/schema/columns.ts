import { timestamp } from 'drizzle-orm/pg-core';

/** Every point in time is a `timestamptz`, read as a JS Date. */
export const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
