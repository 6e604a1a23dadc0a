// A shared keeper: one process that keeps many containers of a resident front-end (corrald's
// pool, keeper-shared.ts), each exactly as a keeper of its own would (keeper-core.ts). A
// Node process holds about 6 MiB of its own at the least, against conmon's 0.3: shared by
// many containers, a container costs its keeper well under 1 MiB (bench/daemon/keeper-memory).
//
// Its maker is on fd 3. It listens on a unix socket in the folder it is given (the data
// root's, 0700: only root reaches it, and no container has it in its mount namespace); each
// connection is one container's control socket, speaking keeper-protocol.ts. It makes each
// container in a vfork child (the runtime's runFast, one at a time), which marks every fd
// past its stdio close-on-exec before it execs: no container gets another's pipes, logs or
// connections (apps/daemon/test/shared-keeper.test.ts runs the attack). Containers that need
// an init (a terminal, --init, -i) get a keeper of their own (KeeperClient.requestInit).
//
// When its maker ends the channel (it has enough containers, or it went away) it stops
// listening, and ends once the last container it keeps is done. Killed, it takes its
// containers with it, as a keeper of their own would (dieWithParent).
import { chmodSync, rmSync, writeSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { keepContainer, loadFastModule } from './keeper-core.js';
import { KEEPER_CONTROL_FD, readMessages, writeMessage } from './keeper-protocol.js';

/** Logs a shared keeper's trouble to its stderr (its maker's log): it goes on for the others. */
export function reportTrouble(e: unknown): void {
  try {
    writeSync(2, `corral keeper ${process.pid}: ${(e as Error)?.stack ?? e}\n`);
  } catch {
    // no stderr to say it on
  }
}

/**
 * Keeps containers until its maker lets it go and the last one is done. Its fds past its
 * maker's socket are close-on-exec already (keeper.ts).
 */
export async function runHost(dir: string): Promise<void> {
  const maker = new Socket({ fd: KEEPER_CONTROL_FD, readable: true, writable: true });
  maker.on('error', () => {});
  const fastModule = loadFastModule();
  for (const m of [import('./logs.js'), import('./keeper-tasks.js')]) m.catch(() => {});

  const path = join(dir, `${process.pid}.sock`);
  rmSync(path, { force: true });
  let keeping = 0;
  let retired = false;
  let done = () => {};
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const endIfIdle = () => {
    if (retired && keeping === 0) done();
  };
  const server = createServer((conn) => {
    keeping++;
    conn.on('error', () => {});
    keepContainer(conn, { mode: 'detached', fastModule, hosted: true })
      .catch(reportTrouble)
      .finally(() => {
        conn.destroy();
        keeping--;
        endIfIdle();
      });
  });
  const retire = () => {
    if (retired) return;
    retired = true;
    server.close();
    rmSync(path, { force: true });
    endIfIdle();
  };
  server.on('error', (e) => {
    reportTrouble(e);
    retire();
  });
  server.listen(path, () => {
    chmodSync(path, 0o600);
    writeMessage(maker, { type: 'listening', path });
  });
  readMessages(maker, () => {}, retire);
  await finished;
}
