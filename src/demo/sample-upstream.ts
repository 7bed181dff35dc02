import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SampleUpstream {
  url: string;
  /** What the upstream received: the demo shows that the credential arrived and the token did not. */
  received: { method: string; path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

const invoices: Record<string, { id: string; customer: string; total: number; currency: string }> = {
  'INV-42': { id: 'INV-42', customer: 'CUS-7', total: 1250, currency: 'EUR' },
  'INV-43': { id: 'INV-43', customer: 'CUS-9', total: 310, currency: 'EUR' },
};

/** A small billing API standing in for a real internal service in the demo. */
export async function startSampleUpstream(): Promise<SampleUpstream> {
  const received: SampleUpstream['received'] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    received.push({ method: req.method ?? 'GET', path, headers: req.headers });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    req.resume();
    const invoice = /^\/invoices\/([A-Z0-9-]+)$/.exec(path);
    if (req.method === 'GET' && path === '/invoices') return send(200, Object.values(invoices));
    if (req.method === 'GET' && invoice) {
      const found = invoices[invoice[1] ?? ''];
      return found ? send(200, found) : send(404, { error: 'not_found' });
    }
    if (req.method === 'DELETE' && invoice) return send(204, null);
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
