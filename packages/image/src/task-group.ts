/**
 * The package's one concurrency limiter: tasks run at most `limit` at once, in the order they
 * were added. The first failure aborts the others (through the signal each task is handed),
 * skips those not started yet, and is what `done()` throws. A pull's layer downloads, a push's
 * blob uploads and the unpacking of an image's layers all run through one.
 */
export class TaskGroup {
  private readonly controller = new AbortController();
  private readonly queue: (() => void)[] = [];
  private readonly tasks: Promise<void>[] = [];
  private active = 0;
  private failure: { error: unknown } | undefined;
  private readonly onAbort: () => void;

  constructor(
    private readonly limit: number,
    private readonly outer?: AbortSignal,
  ) {
    this.onAbort = () => this.controller.abort(outer?.reason);
    if (outer?.aborted) this.onAbort();
    else outer?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Aborted once a task failed or the outer signal was. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once a task has failed (or the group was aborted before a task could start). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Queues a task. `release` lets it give up its slot before it ends (a download whose bytes
   * are all in, waiting on the disk), so that the next one starts meanwhile.
   */
  add(fn: (signal: AbortSignal, release: () => void) => Promise<void>): void {
    this.tasks.push(
      new Promise<void>((settled) => {
        this.queue.push(() => {
          if (this.failure) return settled();
          if (this.signal.aborted) {
            this.failure = { error: this.outer?.reason ?? new Error('aborted') };
            return settled();
          }
          this.active++;
          let freed = false;
          const release = () => {
            if (freed) return;
            freed = true;
            this.active--;
            this.pump();
          };
          let task: Promise<void>;
          try {
            task = fn(this.signal, release);
          } catch (e) {
            task = Promise.reject(e);
          }
          task
            .catch((e: unknown) => {
              this.failure ??= { error: e };
              this.controller.abort(e);
            })
            .finally(() => {
              release();
              settled();
            });
        });
        this.pump();
      }),
    );
  }

  /** Waits for every task added so far; throws the first failure. */
  async done(): Promise<void> {
    try {
      await Promise.all(this.tasks);
    } finally {
      this.outer?.removeEventListener('abort', this.onAbort);
    }
    if (this.failure) throw this.failure.error;
  }

  private pump(): void {
    while (this.active < Math.max(1, this.limit) && this.queue.length) this.queue.shift()!();
  }
}

/** Runs `fn` over `items` through a TaskGroup of `limit` (see there). */
export async function runLimited<T>(
  items: T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal, release: () => void) => Promise<void>,
): Promise<void> {
  const group = new TaskGroup(limit, signal);
  for (const item of items) group.add((s, release) => fn(item, s, release));
  await group.done();
}
