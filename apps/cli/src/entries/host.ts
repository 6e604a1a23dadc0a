// The container commands with `--host` (or CORRAL_HOST), bundled on its own
// (dist/bundle/host.cjs): the argument parsing, corrald's API client and the attach, with no
// engine code (the local engine is main.ts's); the bin sends them here only with a host. See
// ../cli.ts.
import { runCli } from '../cli.js';
import { useRemoteEngine } from '../commands/common.js';
import {
  create,
  exec,
  kill,
  pause,
  rename,
  restart,
  rm,
  run,
  start,
  stop,
  unpause,
  wait,
} from '../commands/containers.js';
import { logs } from '../commands/logs.js';
import { RemoteEngine } from '../remote/engine.js';

useRemoteEngine(RemoteEngine);
runCli([run, create, start, stop, kill, rm, logs, exec, wait, restart, pause, unpause, rename]);
