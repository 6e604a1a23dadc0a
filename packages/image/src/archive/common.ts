import { arch } from 'node:process';
import type { Descriptor, Platform } from '../store/types.js';

/** The OCI architecture name of this machine. */
export function hostArchitecture(): string {
  const map: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return map[arch] ?? arch;
}

/** True when a descriptor's platform fits the host (a descriptor without one fits any). */
export function matchesHost(platform: Platform | undefined): boolean {
  if (!platform) return true;
  return platform.os === 'linux' && platform.architecture === hostArchitecture();
}

/** Picks the manifest for this machine from an index's entries. */
export function pickPlatform(manifests: Descriptor[]): Descriptor | undefined {
  return manifests.find((m) => m.platform && matchesHost(m.platform)) ?? manifests.find((m) => !m.platform);
}

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
