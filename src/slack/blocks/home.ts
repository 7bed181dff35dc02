import { ACTIONS, versioned } from './ids.ts';
import { type Block, button, context, divider, type HomeView } from './kit.ts';
import { homeApprover, homeMine, type Lists } from './lists.ts';
import { slackDate } from './text.ts';

/**
 * App Home: the person's own access, and for approvers what waits for them and what is active.
 * Each half has a fixed share of Slack's 100 blocks and says how many more it holds, so a long
 * own list never pushes the approver half out of sight.
 */
export function homeView(mine: Lists, approver: Lists | undefined, now: Date): HomeView {
  const blocks: Block[] = [
    versioned('home-top', {
      type: 'actions',
      elements: [button('Request access', ACTIONS.openRequestModal, 'open', 'primary')],
    }),
    ...homeMine(mine, now),
  ];
  if (approver) blocks.push(divider(), ...homeApprover(approver, now));
  blocks.push(context(`Updated ${slackDate(now)}`));
  return { type: 'home', blocks };
}
