import type { App } from '@slack/bolt';
import type { SlackDeps } from '../../deps.ts';
import { registerAccessCommand } from './access.ts';

export function register(app: App, deps: SlackDeps): void {
  registerAccessCommand(app, deps);
}
