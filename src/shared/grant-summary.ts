/** What `/access audit <grant>` shows approvers: a grant's calls at a glance, from the audit log. */
export interface GrantCallSummary {
  grantId: string;
  resource: string;
  userId: string;
  totalCalls: number;
  deniedCalls: number;
  byStatus: { status: number; count: number }[];
  /** The most used method + path pairs, most first. */
  topPaths: { method: string; path: string; count: number }[];
  firstSeen: Date | undefined;
  lastSeen: Date | undefined;
  clientIps: string[];
  responseBytes: number;
}

export type SummarizeGrant = (grantId: string) => Promise<GrantCallSummary | undefined>;
