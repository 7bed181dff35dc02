/** The contractor CLI's commands; kept apart so `src/main.ts` can tell them without loading the CLI. */
const CLIENT_COMMANDS = ['login', 'request', 'token', 'curl', 'connect'] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

export const isClientCommand = (command: string): command is ClientCommand =>
  (CLIENT_COMMANDS as readonly string[]).includes(command);
