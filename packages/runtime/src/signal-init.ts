// A signal to a container's init through a pidfd, checked against the start time stored at
// create, so that a recycled PID never gets it. Apart from the runtime so that
// `corral-runtime kill` (podman's stop, a shim's kill) loads this and koffi, not the runtime.
import { close, isErrno, pidfdOpen, pidfdSendSignal } from '@corral/sys';
import { RuntimeError } from './errors.js';
import { isAlive, type StoredState } from './state.js';

export function signalInit(st: StoredState, signo: number): void {
  if (!isAlive(st)) throw new RuntimeError(`container ${st.id} is not running`, 1);
  let fd: number;
  try {
    fd = pidfdOpen(st.pid);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) throw new RuntimeError(`container ${st.id} is not running`, 1);
    throw e;
  }
  try {
    // The pidfd was opened after the check: make sure it names the same process.
    if (!isAlive(st)) throw new RuntimeError(`container ${st.id} is not running`, 1);
    pidfdSendSignal(fd, signo);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) throw new RuntimeError(`container ${st.id} is not running`, 1); // ended meanwhile
    throw e;
  } finally {
    close(fd);
  }
}
