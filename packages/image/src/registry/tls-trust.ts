// The certificates a registry client trusts besides Node's own: what NODE_EXTRA_CA_CERTS means,
// for a process started without that variable. The corral CLI is (its bin drops it): Node
// parses the file at every start, about 40 ms where it names the system's whole CA bundle, and
// only registry commands speak TLS.
import { readFileSync } from 'node:fs';
import tls, { type SecureContext } from 'node:tls';
import { RegistryError } from './errors.js';

const contexts = new Map<string, SecureContext>();

/**
 * A TLS context that trusts Node's bundled CAs and those of the PEM file `file`, as Node's
 * default one does when NODE_EXTRA_CA_CERTS names `file`; made once per file and process.
 */
export function extraCaContext(file: string): SecureContext {
  const made = contexts.get(file);
  if (made) return made;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RegistryError(
      'NETWORK',
      `cannot read the extra CA certificates in ${file} (NODE_EXTRA_CA_CERTS): ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new RegistryError(
      'NETWORK',
      `${file} (NODE_EXTRA_CA_CERTS) holds no PEM certificate; fix or unset the variable`,
    );
  let context: SecureContext;
  try {
    context = tls.createSecureContext({ ca: [...defaultCas(), pem] });
  } catch (e) {
    throw new RegistryError(
      'NETWORK',
      `the certificates in ${file} (NODE_EXTRA_CA_CERTS) cannot be used: ${(e as Error).message}`,
      { cause: e },
    );
  }
  contexts.set(file, context);
  return context;
}

/**
 * The CAs Node trusts by default: its bundled ones (Node 20), or on Node 22.15+ what it
 * would use (the system's with --use-openssl-ca or --use-system-ca).
 */
function defaultCas(): readonly string[] {
  const get = (tls as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
  return get ? get('default') : tls.rootCertificates;
}
