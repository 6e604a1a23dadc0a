import { familiarName, parseReference } from './reference.js';
import type { HistoryEntry, ImageConfig, ImageRecord, LayerRecord } from './types.js';

export interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
  emptyLayer: boolean;
}

/** Docker-like `image inspect` JSON of a record, its config and its full names. */
export function inspectImage(
  r: ImageRecord,
  config: ImageConfig,
  names: string[],
  layerSize: (l: LayerRecord) => number,
): Record<string, unknown> {
  return {
    Id: r.id,
    RepoTags: names.map(familiarName),
    RepoDigests: [...new Set(names.map((n) => `${familiarName(repoOf(n))}@${r.manifestDigest}`))],
    Parent: '',
    Comment: config.history?.at(-1)?.comment ?? '',
    Created: config.created ?? '',
    DockerVersion: '',
    Author: config.author ?? '',
    Config: config.config ?? {},
    Architecture: config.architecture,
    Variant: config.variant,
    Os: config.os,
    Size: r.layers.reduce((s, l) => s + layerSize(l), 0),
    RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
    Metadata: { LastTagTime: r.loadedAt },
    Descriptor: { mediaType: r.manifestMediaType, digest: r.manifestDigest, size: r.manifestSize },
  };
}

/** `history` rows: newest first, sizes from the layers, like docker. */
export function historyRows(
  r: ImageRecord,
  config: ImageConfig,
  layerSize: (l: LayerRecord) => number,
): HistoryRow[] {
  const entries: HistoryEntry[] = config.history?.length
    ? config.history
    : r.layers.map(() => ({ created_by: '' }));
  let layer = 0;
  const rows: HistoryRow[] = entries.map((h) => {
    const empty = h.empty_layer === true;
    const l = empty ? undefined : r.layers[layer++];
    return {
      id: '<missing>',
      created: h.created,
      createdBy: h.created_by ?? '',
      size: l ? layerSize(l) : 0,
      comment: h.comment ?? '',
      emptyLayer: empty,
    };
  });
  if (rows.length) rows[rows.length - 1].id = r.id;
  return rows.reverse();
}

function repoOf(full: string): string {
  const r = parseReference(full);
  return `${r.domain}/${r.path}`;
}
