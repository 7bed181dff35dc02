import type { App } from '@slack/bolt';
import type { SlackDeps } from '../deps.ts';
import * as actions from './actions/index.ts';
import * as commands from './commands/index.ts';
import { registerDeviceActions } from './devices.ts';
import * as events from './events/index.ts';
import * as views from './views/index.ts';

export function registerListeners(app: App, deps: SlackDeps): void {
  commands.register(app, deps);
  actions.register(app, deps);
  registerDeviceActions(app, deps);
  views.register(app, deps);
  events.register(app, deps);
}
