import type { Logger } from 'pino';
import { loadingModal, type ModalView, noticeModal } from './blocks/index.ts';
import type { Notifier } from './notifier.ts';

/** What a modal's work decided: the modal to show, or why there is none (said in words). */
export type ModalOutcome = { view: ModalView } | { refusal: string };

export interface OpenModalDeps {
  notifier: Pick<Notifier, 'openView' | 'updateView'>;
  logger: Logger;
}

/**
 * How long work may take before a loading modal goes up instead. A trigger id lives 3 s from
 * when Slack made it (https://api.slack.com/docs/triggers); some of that is spent before the
 * request reaches jitgate, and views.open itself takes a round trip.
 */
const MODAL_BUDGET_MS = 1200;

/**
 * Opens the modal `work` decides on, within the trigger's 3 s whatever `work` costs: when it
 * answers within {@link MODAL_BUDGET_MS} (a cached group membership, a database read), its
 * modal opens directly; otherwise a loading modal opens at once and is updated with the outcome
 * when it comes (a user group asked of a rate-limited Slack). A refusal found before anything
 * opened goes to `refuse` (an ephemeral answer); one found after, into the open modal.
 */
export async function openModal(
  deps: OpenModalDeps,
  triggerId: string,
  title: string,
  work: () => Promise<ModalOutcome>,
  refuse: (text: string) => Promise<void>,
  budgetMs = MODAL_BUDGET_MS,
): Promise<void> {
  const outcome = work().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const early = await Promise.race([
    outcome,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), budgetMs);
    }),
  ]);
  clearTimeout(timer);
  if (early) {
    if ('error' in early) throw early.error;
    if ('view' in early.value) await deps.notifier.openView(triggerId, early.value.view);
    else await refuse(early.value.refusal);
    return;
  }
  const loading = await deps.notifier.openView(triggerId, loadingModal(title));
  const late = await outcome;
  if ('error' in late) {
    await deps.notifier
      .updateView(
        loading.id,
        loading.hash,
        noticeModal(title, 'Something went wrong on our side; close this and try again.'),
      )
      .catch(() => undefined);
    throw late.error;
  }
  const view = 'view' in late.value ? late.value.view : noticeModal(title, late.value.refusal);
  try {
    await deps.notifier.updateView(loading.id, loading.hash, view);
  } catch (error) {
    // The person closed the loading modal (or moved on); there is nothing left to show.
    deps.logger.debug(
      { err: error instanceof Error ? error.message : String(error) },
      'loading modal not updated',
    );
  }
}
