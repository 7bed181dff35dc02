/**
 * What buttons and selects carry in their `value`, written by the blocks and read back here by
 * the listeners. Values come back from Slack, so every decoder refuses what it did not write.
 */

/** `id|seconds`: a request or grant and a duration (approve for less, extend). */
export function encodeValue(id: string, seconds: number): string {
  return `${id}|${seconds}`;
}

export function decodeValue(value: string): { id: string; seconds: number } | undefined {
  const [id, seconds, ...rest] = value.split('|');
  const n = Number(seconds);
  if (!id || rest.length > 0 || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { id, seconds: n };
}

/** A quota an approver may choose: calls, response bytes or both (absent: unchanged). */
export interface QuotaChoice {
  requests?: number;
  responseBytes?: number;
}

/**
 * `id|calls|bytes` (`-` for a cap left alone). Messages posted before bytes could be lowered
 * carry `id|calls`; both decode.
 */
export function encodeQuotaValue(id: string, choice: QuotaChoice): string {
  return `${id}|${choice.requests ?? '-'}|${choice.responseBytes ?? '-'}`;
}

export function decodeQuotaValue(value: string): { id: string; quota: QuotaChoice } | undefined {
  const [id, ...figures] = value.split('|');
  if (!id || figures.length < 1 || figures.length > 2) return undefined;
  const read = (text: string | undefined): number | undefined | null => {
    if (text === undefined || text === '-') return undefined;
    const n = Number(text);
    return /^[0-9]+$/.test(text) && Number.isSafeInteger(n) && n > 0 ? n : null;
  };
  const requests = read(figures[0]);
  const responseBytes = read(figures[1]);
  if (requests === null || responseBytes === null) return undefined;
  if (requests === undefined && responseBytes === undefined) return undefined;
  const quota: QuotaChoice = {};
  if (requests !== undefined) quota.requests = requests;
  if (responseBytes !== undefined) quota.responseBytes = responseBytes;
  return { id, quota };
}

/** Which list a page button turns: a person's own (`/access list`) or an approver's (`/access active`). */
export type ListKind = 'mine' | 'active';

export interface ListPage {
  list: ListKind;
  page: number;
}

/** `mine|2`, `active|3`: the list and the 1-based page to show. */
export function encodeListPage(page: ListPage): string {
  return `${page.list}|${page.page}`;
}

export function decodeListPage(value: string): ListPage | undefined {
  const match = /^(mine|active)\|([1-9][0-9]{0,5})$/.exec(value);
  if (!match?.[1] || !match[2]) return undefined;
  return { list: match[1] as ListKind, page: Number(match[2]) };
}
