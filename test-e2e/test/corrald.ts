import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type Cleanups, runCorral, until } from '@corral/testkit';
import Docker from 'dockerode';

const CORRALD = join(import.meta.dirname, '..', '..', 'apps', 'daemon', 'bin', 'corrald.js');

export interface Corrald {
  socket: string;
  /** Its data root (the CLI's --root). */
  root: string;
  /** The docker config folder of corrald itself: it must stay empty (clients keep theirs). */
  daemonConfig: string;
  dockerode: Docker;
  /** For the docker CLI at it: DOCKER_HOST, and a config folder of the client's own. */
  env: NodeJS.ProcessEnv;
}

/**
 * Starts corrald on a private socket, data root and exec root in `dir`, answering once it
 * pings. At cleanup: its containers are removed, it is stopped, and its networks' bridges and
 * rules go after it.
 */
export async function startCorrald(c: Cleanups, dir: string): Promise<Corrald> {
  const socket = join(dir, 'corrald.sock');
  const root = join(dir, 'root');
  const daemonConfig = join(dir, 'daemon-docker-config');
  const child = spawn(
    process.execPath,
    [CORRALD, '-H', `unix://${socket}`, '--data-root', root, '--exec-root', join(dir, 'exec')],
    { stdio: 'ignore', env: { ...process.env, DOCKER_CONFIG: daemonConfig } },
  );
  const exited = new Promise((r) => child.once('exit', r));
  c.add(() => runCorral(root, ['network', 'down']));
  c.add(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  const dockerode = new Docker({ socketPath: socket });
  c.add(async () => {
    for (const ct of await dockerode.listContainers({ all: true }).catch(() => []))
      await dockerode.getContainer(ct.Id).remove({ force: true });
  });
  await until(
    () =>
      dockerode.ping().then(
        () => true,
        () => false,
      ),
    'corrald',
    30_000,
  );
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'docker-config') };
  return { socket, root, daemonConfig, dockerode, env };
}
