import { existsSync } from 'node:fs';
import type { NetworkDriver } from '../driver.js';
import type { Attachment } from '../types.js';
import { loopbackConf, pluginConfig } from './conflist.js';
import { type CniResult, DEFAULT_CNI_PATH, findPlugin, invokePlugin } from './invoke.js';

/** The CNI backend: Debian's containernetworking-plugins, run as the spec says. */
export class CniDriver implements NetworkDriver {
  readonly name = 'cni';
  constructor(readonly cniPath: readonly string[] = DEFAULT_CNI_PATH) {}

  /** Fails early, naming the Debian package, when a plugin of the list is missing. */
  check(types: readonly string[]): void {
    for (const t of types) findPlugin(t, this.cniPath);
  }

  async loopback(containerId: string, netns: string, command: 'ADD' | 'DEL'): Promise<void> {
    await invokePlugin('loopback', loopbackConf, {
      command,
      containerId,
      netns: existsSync(netns) ? netns : undefined,
      ifname: 'lo',
      cniPath: this.cniPath,
    });
  }

  /** ADD through the list in order, each plugin given the previous one's result. */
  async add(att: Attachment): Promise<CniResult> {
    const list = att.conflist;
    this.check(list.plugins.map((p) => p.type));
    let prev: CniResult | undefined;
    for (let i = 0; i < list.plugins.length; i++) {
      const conf = pluginConfig(list, i, att.runtimeConfig, prev);
      prev = await invokePlugin(list.plugins[i].type, conf, this.inv(att, 'ADD'));
    }
    if (!prev) throw new Error(`CNI list ${list.name} returned no result`);
    return prev;
  }

  /**
   * DEL through the list in reverse, each plugin given the ADD's final result (or none when
   * ADD never finished). Every plugin runs even when one fails; the first failure is thrown.
   */
  async del(att: Attachment): Promise<void> {
    const list = att.conflist;
    let first: unknown;
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      const conf = pluginConfig(list, i, att.runtimeConfig, att.result);
      try {
        await invokePlugin(list.plugins[i].type, conf, this.inv(att, 'DEL'));
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }

  private inv(att: Attachment, command: 'ADD' | 'DEL') {
    return {
      command,
      containerId: att.containerId,
      // The spec lets DEL run without a namespace (it was removed); plugins then clean the host side.
      netns: command === 'DEL' && !existsSync(att.netns) ? undefined : att.netns,
      ifname: att.ifname,
      cniPath: this.cniPath,
    };
  }
}
