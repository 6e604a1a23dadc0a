// Docker's config.json credentials for a front-end that reaches registries through a daemon
// (the CLI's remote mode, as the docker CLI does with dockerd): kept by the client at login
// once the daemon has checked them, and sent with each pull and push (X-Registry-Auth). The
// daemon keeps none.
import { DockerCredentialStore, parseReference } from '@corral/image';
import { engineOp } from './errors.js';

/**
 * Docker's X-Registry-Auth for a pull or push of `ref`: the username and password kept for its
 * registry, as base64url JSON; undefined when none are kept (or only a token, which corrald
 * does not take per request).
 */
export function registryAuthHeader(ref: string, configPath?: string): Promise<string | undefined> {
  return engineOp(async () => {
    const registry = parseReference(ref).domain;
    const c = await new DockerCredentialStore(configPath).get(registry);
    if (!c || c.identityToken) return undefined;
    const auth = { username: c.username, password: c.password, serveraddress: registry };
    return Buffer.from(JSON.stringify(auth)).toString('base64url');
  });
}

/** Keeps credentials for `server` as `login` does, once a daemon has checked them. */
export function keepLogin(
  server: string,
  username: string,
  password: string,
  configPath?: string,
): Promise<void> {
  return engineOp(() => new DockerCredentialStore(configPath).set(server, { username, password }));
}
