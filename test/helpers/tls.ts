import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** SHA-256 fingerprint as `getPeerCertificate().fingerprint256` reports it. */
  fingerprint: string;
}

/** A scratch directory for certificates and other files; `remove()` deletes it. */
export function tempDir(prefix = 'jitgate-tls-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A self-signed P-256 certificate, valid one day, made with the openssl CLI (node:crypto cannot
 * issue X.509), for localhost and 127.0.0.1 unless `dnsNames` says which names it covers (then
 * those only). Being self-signed, it is also its own CA file.
 */
export function makeCertificate(dir: string, name: string, dnsNames?: readonly string[]): TestCertificate {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${dnsNames?.[0] ?? 'localhost'}`,
      '-addext',
      `subjectAltName=${dnsNames ? dnsNames.map((n) => `DNS:${n}`).join(',') : 'IP:127.0.0.1,DNS:localhost'}`,
      '-days',
      '1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  const cert = readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    cert,
    key: readFileSync(keyFile, 'utf8'),
    fingerprint: new X509Certificate(cert).fingerprint256,
  };
}

/** Opens a fresh TLS connection trusting `ca` and returns the served certificate's fingerprint. */
export function servedFingerprint(port: number, ca: string | string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}
