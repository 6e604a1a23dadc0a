// The front-end's side of a shared keeper (keeper-host.ts): spawns it, and makes a
// KeeperClient for each container it is to keep, on a connection of its own.
import type { ChildProcess } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChildStandIn, KeeperClient } from './keeper-client.js';
import { type KeeperMessage, readMessages } from './keeper-protocol.js';
import { spawnKeeperHost } from './keeper-spawn.js';

/**
 * One container's connection, as KeeperClient sees a keeper's process: its pid is the shared
 * keeper's, its fd 3 the connection, and killing it closes the connection (the shared keeper
 * lives on for the others; it kills a container whose front-end went before its start).
 */
class HostedChild extends ChildStandIn {
  constructor(
    pid: number,
    private readonly conn: Socket,
  ) {
    super(pid, [null, null, null, conn, null]);
    conn.on('error', () => {});
    conn.once('close', () => this.ended(0));
  }

  kill(): boolean {
    this.conn.destroy();
    return true;
  }

  override ref(): void {
    this.conn.ref();
  }

  override unref(): void {
    this.conn.unref();
  }
}

export class SharedKeeper {
  readonly child: ChildProcess;
  /** Resolves once it listens; rejects if it ends first. */
  readonly listening: Promise<void>;
  /** Containers it keeps (or is about to: parked connections). */
  keeping = 0;
  #path: string | null = null;
  #channel: Duplex;

  /** `dir`: where it listens (only root may enter it); `errorLog`: an fd for its stderr. */
  constructor(dir: string, errorLog: number) {
    this.child = spawnKeeperHost(dir, errorLog);
    this.#channel = this.child.stdio[3] as unknown as Duplex;
    this.listening = new Promise((resolve, reject) => {
      readMessages<KeeperMessage>(
        this.#channel,
        (m) => {
          if (m.type !== 'listening') return;
          this.#path = m.path;
          resolve();
        },
        () => reject(new Error('the shared keeper ended')),
      );
    });
    this.listening.catch(() => {});
    // It holds nothing that should keep this process alive.
    this.child.unref();
    (this.#channel as unknown as { unref(): void }).unref();
  }

  get ready(): boolean {
    return this.#path !== null && this.alive;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** A fast keeper's client for one more container (once `listening`). */
  connect(): KeeperClient {
    if (!this.#path || this.child.pid === undefined) throw new Error('the shared keeper is not listening');
    const child = new HostedChild(this.child.pid, createConnection(this.#path));
    this.keeping++;
    child.once('exit', () => this.keeping--);
    return new KeeperClient('detached', undefined, undefined, child as unknown as ChildProcess, true, true);
  }

  /** Takes no more containers: it ends once those it keeps are done. */
  retire(): void {
    this.#channel.end();
  }
}
