import { asc, eq } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { approvals } from '../schema/index.ts';

export type NewApproval = typeof approvals.$inferInsert;

/** One approver's choices on a request. */
export interface GivenApproval {
  approverId: string;
  durationSeconds: number | null;
  quotaRequests: number | null;
  quotaResponseBytes: number | null;
}

/** Records an approver's yes; false when this approver had already approved (the primary key refuses a second row). */
export async function addApproval(tx: Db | Tx, values: NewApproval): Promise<boolean> {
  const inserted = await tx.insert(approvals).values(values).onConflictDoNothing().returning();
  return inserted.length > 0;
}

/** The approvals a request has, in the order they were given. */
export function approvalsOf(db: Db | Tx, requestId: string): Promise<GivenApproval[]> {
  return db
    .select({
      approverId: approvals.approverId,
      durationSeconds: approvals.durationSeconds,
      quotaRequests: approvals.quotaRequests,
      quotaResponseBytes: approvals.quotaResponseBytes,
    })
    .from(approvals)
    .where(eq(approvals.requestId, requestId))
    .orderBy(asc(approvals.createdAt));
}
