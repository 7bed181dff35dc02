import { html, type SafeHtml } from '../html.ts';
import { rolesOf, seesAll, seesOthers, type Viewer } from '../viewer.ts';

export interface PageFrame {
  title: string;
  /** The nav entry to mark as current. */
  current: string;
  viewer: Viewer;
  csrfToken: string;
  notice?: string | undefined;
  body: SafeHtml;
}

const NAV: { path: string; label: string; shown: (v: Viewer) => boolean }[] = [
  { path: '/console', label: 'Overview', shown: () => true },
  { path: '/console/grants', label: 'Grants', shown: () => true },
  { path: '/console/requests', label: 'Requests', shown: () => true },
  { path: '/console/people', label: 'People', shown: seesOthers },
  { path: '/console/alerts', label: 'Alerts', shown: () => true },
  { path: '/console/audit', label: 'Audit', shown: () => true },
  { path: '/console/chain', label: 'Chain', shown: seesAll },
  { path: '/console/policy', label: 'Policy', shown: () => true },
];

function head(title: string): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · jitgate</title>
<link rel="stylesheet" href="/console/assets/console.css">
<link rel="icon" href="/console/assets/icon.svg" type="image/svg+xml">
</head>`;
}

/** A console page: skip link, navigation, who is signed in (and as what), sign-out, the content. */
export function page(frame: PageFrame): string {
  const { viewer } = frame;
  return html`${head(frame.title)}
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<span class="brand">jitgate</span>
<nav aria-label="Console"><ul>${NAV.filter((n) => n.shown(viewer)).map(
    (n) =>
      html`<li><a href="${n.path}"${n.path === frame.current ? html` aria-current="page"` : ''}>${n.label}</a></li>`,
  )}</ul></nav>
<div class="who"><span>${viewer.name} <span class="muted">(${viewer.userId} · ${rolesOf(viewer).join(', ')})</span></span>
<form method="post" action="/console/auth/logout"><input type="hidden" name="_csrf" value="${frame.csrfToken}"><button type="submit" class="link">Sign out</button></form></div>
</header>
<main id="main" tabindex="-1">
<h1>${frame.title}</h1>
${frame.notice ? html`<p class="notice" role="status">${frame.notice}</p>` : ''}
${frame.body}
</main>
</body>
</html>`.text;
}

/** A page with a sentence and no navigation: sign-in problems, signed out, errors. */
export function messagePage(title: string, text: string, offerSignIn = false): string {
  return html`${head(title)}
<body>
<main id="main" class="message">
<h1>${title}</h1>
<p>${text}</p>
${offerSignIn ? html`<p><a class="button" href="/console/auth/login">Sign in with Slack</a></p>` : ''}
</main>
</body>
</html>`.text;
}
