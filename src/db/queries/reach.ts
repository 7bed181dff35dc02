/**
 * How far a console reader sees beyond everything: rows on these resources (the ones they
 * approve) and rows about themselves. Undefined where a query takes it: no limit.
 */
export interface Reach {
  resources: readonly string[];
  userId: string;
}
