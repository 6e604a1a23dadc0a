// First: spawns a run's keeper ahead (see early.ts; done already when the bundle's early entry
// ran); order matters.
import './early.js';
import { Engine } from '@corral/engine';
import { runCli } from './cli.js';
import { aboutCommands } from './commands/about.js';
import { useLocalEngine } from './commands/common.js';
import { containerCommands } from './commands/containers.js';
import { cp } from './commands/cp.js';
import { events } from './commands/events.js';
import { imageCommands } from './commands/images.js';
import { networkCommands } from './commands/network.js';
import { container } from './commands/prune.js';
import { stats } from './commands/stats.js';
import { system } from './commands/system.js';
import { volumeCommands } from './commands/volume.js';
import { releaseParkedInit } from './parked.js';

useLocalEngine((options) => Engine.open(options));
runCli(
  [
    ...containerCommands,
    cp,
    container,
    stats,
    events,
    ...imageCommands,
    ...networkCommands,
    system,
    ...volumeCommands,
    ...aboutCommands,
  ],
  // An init started ahead for a run that failed first would keep this process waiting.
  releaseParkedInit,
);
