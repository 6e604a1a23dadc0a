// What the container's init does for the runtime-spec lifecycle around its own setup: the
// pause for the runtime's createRuntime hooks and the createContainer hooks (after the mounts,
// before pivot_root), the startContainer hooks and the personality (after `start`, before the
// program). Synchronous, like the rest of the init.
import { chdir, chroot, joinSessionKeyring, MS, mount, PERSONALITY, personality } from '@corral/sys';
import { type HookState, hasHooks, runHooks } from './hooks.js';
import { step } from './process-setup.js';
import type { OciSpec } from './spec.js';
import { readLineSync, writeLineSync } from './sync.js';

/** The parts of the init's config that the lifecycle needs. */
export interface LifecycleConfig {
  spec: OciSpec;
  /** The container's state for hooks (status and pid filled in here). */
  state?: HookState;
  /** Keep the caller's session keyring instead of joining a new one (`--no-new-keyring`). */
  noNewKeyring?: boolean;
  /** Move the rootfs onto / and chroot instead of pivot_root (`--no-pivot`). */
  noPivot?: boolean;
}

/**
 * Before pivot_root: with prestart or createRuntime hooks, tells the runtime (which runs them
 * in its own namespaces) and waits for its go; then runs the createContainer hooks here, in
 * the container's namespaces with the host's root.
 */
export function beforePivotRoot(config: LifecycleConfig, syncFd: number): void {
  const { spec } = config;
  // runc's default: the container gets a session keyring of its own, named after it.
  if (!config.noNewKeyring && config.state)
    step('joining a new session keyring', () => joinSessionKeyring(`_ses.${config.state!.id}`));
  if (hasHooks(spec.hooks, 'prestart', 'createRuntime')) {
    writeLineSync(syncFd, { type: 'hooks' });
    const answer = readLineSync(syncFd);
    if (answer !== 'go') throw new Error(`the runtime's hooks failed: ${answer}`);
  }
  if (hasHooks(spec.hooks, 'createContainer') && config.state)
    step('createContainer hooks', () =>
      runHooks(spec.hooks, 'createContainer', { ...config.state!, status: 'creating' }),
    );
}

/** After `start`, before the program: the startContainer hooks (inside), then the personality. */
export function beforeProgram(config: LifecycleConfig): void {
  const { spec } = config;
  if (hasHooks(spec.hooks, 'startContainer') && config.state)
    step('startContainer hooks', () =>
      runHooks(spec.hooks, 'startContainer', { ...config.state!, status: 'created' }),
    );
  const persona = spec.linux?.personality;
  if (persona) step(`personality ${persona.domain}`, () => personality(PERSONALITY[persona.domain]));
}

/**
 * `--no-pivot`: moves the rootfs mount onto / and chroots into it, for roots where pivot_root
 * cannot work (a ramdisk). Weaker than pivot_root: the old root stays beneath the new one, so a
 * process with CAP_SYS_CHROOT could climb out; runc documents the same.
 */
export function moveRoot(rootfs: string): void {
  step('moving the rootfs onto / (--no-pivot)', () => {
    chdir(rootfs);
    mount(rootfs, '/', null, MS.MOVE);
    chroot('.');
    chdir('/');
  });
}
