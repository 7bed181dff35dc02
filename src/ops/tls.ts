import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError, type TlsFiles } from '../config.ts';

/** A listener's key and certificate chain, read and checked to belong together. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  /** SHA-256 fingerprint of the leaf certificate, for the log line that says which one is served. */
  fingerprint: string;
  /** The leaf certificate's notAfter (ISO 8601), logged so an expiring certificate is noticed. */
  validTo: string;
}

/** What the start-up and reload log lines say about a served certificate. */
export function tlsLogFields(material: TlsMaterial): { fingerprint: string; validTo: string } {
  return { fingerprint: material.fingerprint, validTo: material.validTo };
}

/** `Mar 30 12:24:29 2026 GMT` (how OpenSSL prints notAfter) as ISO 8601, which log queries can compare. */
function isoDate(openSslDate: string): string {
  const time = Date.parse(openSslDate);
  return Number.isNaN(time) ? openSslDate : new Date(time).toISOString();
}

function readPem(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError([
      `${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    ]);
  }
}

/**
 * Read a listener's files and check them the way the TLS stack will use them. Throws a
 * ConfigError whose one line names the variable at fault; file contents are never quoted,
 * because the key file is a secret.
 */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = readPem(files.certFile, files.certVariable);
  const key = readPem(files.keyFile, files.keyVariable);
  let leaf: X509Certificate;
  try {
    // The first certificate in the file is the one presented; the rest is its chain.
    leaf = new X509Certificate(cert);
  } catch {
    throw new ConfigError([`${files.certVariable}: ${files.certFile} holds no PEM certificate`]);
  }
  try {
    createPrivateKey(key);
  } catch {
    throw new ConfigError([
      `${files.keyVariable}: ${files.keyFile} holds no PEM private key (or it is passphrase-protected)`,
    ]);
  }
  try {
    // OpenSSL checks here that the key belongs to the certificate ("key values mismatch").
    createSecureContext({ key, cert });
  } catch {
    throw new ConfigError([
      `${files.keyVariable}: the key in ${files.keyFile} does not belong to the certificate in ${files.certVariable}`,
    ]);
  }
  return { key, cert, fingerprint: leaf.fingerprint256, validTo: isoDate(leaf.validTo) };
}

/** A TLS listener whose certificate can be replaced while it runs. */
export interface TlsListener {
  /** `proxy` or `admin`, for log lines. */
  name: string;
  server: TlsServer;
  files: TlsFiles;
}

export type TlsReloadResult =
  | { listener: string; ok: true; fingerprint: string }
  | { listener: string; ok: false; error: string };

/**
 * Re-read each listener's files and swap its certificate in place. New connections get the new
 * certificate; open connections (and the calls on them) keep the one they were made with, so a
 * rotation drops nothing. Bad new files leave the listener serving its previous certificate.
 */
export function reloadTlsListeners(listeners: readonly TlsListener[], logger: Logger): TlsReloadResult[] {
  return listeners.map(({ name, server, files }): TlsReloadResult => {
    let material: TlsMaterial;
    try {
      material = readTlsMaterial(files);
    } catch (error) {
      const reason = error instanceof ConfigError ? error.problems.join('; ') : String(error);
      logger.error(
        { listener: name, reason },
        'TLS certificate reload failed; keeping the previous certificate',
      );
      return { listener: name, ok: false, error: reason };
    }
    server.setSecureContext({ key: material.key, cert: material.cert });
    logger.info({ listener: name, ...tlsLogFields(material) }, 'TLS certificate reloaded');
    return { listener: name, ok: true, fingerprint: material.fingerprint };
  });
}
