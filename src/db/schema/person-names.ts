import { sql } from 'drizzle-orm';
import { check, pgTable, text } from 'drizzle-orm/pg-core';
import { at } from './columns.ts';

/**
 * Slack people's names, so the console shows "Ada Lovelace" instead of `U0123ABCD` without
 * asking Slack per row: a page reads its people's names in one query. Names come from the ID
 * token at sign-in and from `users.info`, asked in the background for ids the console shows
 * without a name (or with one older than a day). Only display text: nothing decides by it.
 *
 * Guarantees: one row per Slack user id; a name is 1 to 200 characters.
 */
export const personNames = pgTable(
  'person_names',
  {
    userId: text('user_id').primaryKey(),
    name: text('name').notNull(),
    source: text('source', { enum: ['sign_in', 'slack'] }).notNull(),
    updatedAt: at('updated_at').notNull(),
  },
  (t) => [
    check('person_names_name_check', sql`char_length(${t.name}) between 1 and 200`),
    check('person_names_source_check', sql`${t.source} in ('sign_in','slack')`),
  ],
);
export type PersonNameRow = typeof personNames.$inferSelect;
