import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { createProgressRenderer, familiarName, formatBytes, type ProgressEvent } from '@corral/engine';
import type { Command, Context, ParsedArgs } from '../args.js';
import { UsageError } from '../args.js';
import { ago, table } from '../format.js';
import { byteProgress, loadInput } from '../progress.js';
import { engine, list, str } from './common.js';
import { commandGroup } from './group.js';
import { images, short } from './image-list.js';

/** Where an archive goes: `-o FILE`, or stdout unless that is a terminal. */
function archiveOutput(a: ParsedArgs): Writable {
  const file = str(a, 'output');
  if (!file && process.stdout.isTTY) {
    throw new UsageError('refusing to write the archive to a terminal: use -o FILE or a redirect');
  }
  return file ? createWriteStream(file) : process.stdout;
}

/** Runs a pull or push with a progress display on stderr (bars on a terminal, lines otherwise). */
async function withProgress<T>(fn: (onProgress: (event: ProgressEvent) => void) => Promise<T>): Promise<T> {
  const progress = createProgressRenderer(process.stderr);
  try {
    return await fn((event) => progress.update(event));
  } finally {
    progress.finish();
  }
}

/** The engine with the registry settings of the command line. */
const withRegistry = (ctx: Context, a: ParsedArgs) =>
  engine(ctx, { insecureRegistries: list(a, 'insecure-registry') });

const insecureFlag = {
  name: 'insecure-registry',
  type: 'list' as const,
  value: 'HOST',
  description: 'Allow plain HTTP to this registry (loopback ones always are)',
};

export const load: Command = {
  name: 'load',
  usage: 'load [OPTIONS]',
  description: 'Load images from a docker-archive or OCI layout tar (stdin by default)',
  flags: [
    { name: 'input', short: 'i', type: 'string', value: 'FILE', description: 'Read from a tar archive file' },
  ],
  async run(a, ctx) {
    const e = await engine(ctx);
    // On a terminal, the archive's bytes read so far against its size (nothing in a pipe).
    const { input, progress } = loadInput(str(a, 'input'));
    const result = await e.images.load(input).finally(() => progress.finish());
    for (const img of result.images) {
      if (img.names.length) for (const n of img.names) console.log(`Loaded image: ${familiarName(n)}`);
      else console.log(`Loaded image ID: ${img.id}`);
    }
    return 0;
  },
};

export const save: Command = {
  name: 'save',
  usage: 'save [OPTIONS] IMAGE [IMAGE...]',
  description: 'Save images to a tar archive that docker load, podman and skopeo read (stdout by default)',
  flags: [{ name: 'output', short: 'o', type: 'string', value: 'FILE', description: 'Write to a file' }],
  args: { min: 1 },
  async run(a, ctx) {
    const file = str(a, 'output');
    const e = await engine(ctx);
    if (!file) {
      await e.images.save(a.positionals, archiveOutput(a));
      return 0;
    }
    // As docker's CLI: written beside the file, renamed once whole; a failed (or killed) save
    // never leaves a half archive under the name asked for.
    const tmp = join(
      dirname(file),
      `.${basename(file)}.corral-${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    try {
      // Opened now, so that a failure before the first write leaves no file behind.
      await e.images.save(a.positionals, createWriteStream(tmp, { fd: openSync(tmp, 'wx', 0o644) }));
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return 0;
  },
};

/** docker's --change: one Dockerfile instruction for the image's config (the engine parses it). */
const changeFlag = {
  name: 'change',
  short: 'c',
  type: 'list' as const,
  value: 'INSTRUCTION',
  description:
    'A Dockerfile instruction for the image: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR',
};

export const importCmd: Command = {
  name: 'import',
  usage: 'import [OPTIONS] FILE|- [REPOSITORY[:TAG]]',
  description: 'Import a root filesystem tarball as a one-layer image',
  flags: [
    changeFlag,
    { name: 'message', short: 'm', type: 'string', description: 'Commit message for the imported image' },
  ],
  args: { min: 1, max: 2 },
  async run(a, ctx) {
    const [file, name] = a.positionals;
    const e = await engine(ctx);
    const source = file === '-' ? process.stdin : createReadStream(file);
    const rec = await e.images.import(source, {
      names: name ? [name] : [],
      changes: list(a, 'change'),
      message: str(a, 'message'),
    });
    console.log(rec.id);
    return 0;
  },
};

export const exportCmd: Command = {
  name: 'export',
  usage: 'export [OPTIONS] CONTAINER',
  description: "Export a container's filesystem as a tar archive (stdout by default)",
  flags: [{ name: 'output', short: 'o', type: 'string', value: 'FILE', description: 'Write to a file' }],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    await (await engine(ctx)).exportContainer(a.positionals[0], archiveOutput(a));
    return 0;
  },
};

export const commitCmd: Command = {
  name: 'commit',
  usage: 'commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
  description: "Create a new image from a container's changes",
  flags: [
    { name: 'author', short: 'a', type: 'string', description: 'Author' },
    { name: 'message', short: 'm', type: 'string', description: 'Commit message' },
    changeFlag,
    {
      name: 'pause',
      short: 'p',
      type: 'boolean',
      description: 'Pause the container during commit (default true; --pause=false to not)',
    },
  ],
  args: { min: 1, max: 2 },
  async run(a, ctx) {
    const [ref, name] = a.positionals;
    const e = await engine(ctx);
    // On a terminal, the new layer's bytes so far (nothing in a pipe).
    const progress = byteProgress('Committing');
    const rec = await e
      .commitContainer(ref, {
        name,
        author: str(a, 'author'),
        message: str(a, 'message'),
        pause: a.flags.pause !== false,
        changes: list(a, 'change'),
        onProgress: (n) => progress.set(n),
      })
      .finally(() => progress.finish());
    console.log(rec.id);
    return 0;
  },
};

export const rmi: Command = {
  name: 'rmi',
  usage: 'rmi [OPTIONS] IMAGE [IMAGE...]',
  description: 'Remove images (never one a running container uses; one only stopped containers use needs -f)',
  flags: [
    { name: 'force', short: 'f', type: 'boolean', description: 'Remove even if stopped containers use it' },
  ],
  args: { min: 1 },
  async run(a, ctx) {
    const e = await engine(ctx);
    let code = 0;
    for (const ref of a.positionals) {
      try {
        const r = await e.images.remove(ref, { force: a.flags.force === true });
        for (const u of r.untagged) console.log(`Untagged: ${u}`);
        for (const d of r.deleted) console.log(`Deleted: ${d}`);
      } catch (err) {
        console.error(`corral: ${(err as Error).message}`);
        code = 1;
      }
    }
    return code;
  },
};

export const tag: Command = {
  name: 'tag',
  usage: 'tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  description: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  flags: [],
  args: { min: 2, max: 2 },
  async run(a, ctx) {
    await (await engine(ctx)).images.tag(a.positionals[0], a.positionals[1]);
    return 0;
  },
};

export const history: Command = {
  name: 'history',
  usage: 'history IMAGE',
  description: 'Show the history of an image',
  flags: [],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const rows = await (await engine(ctx)).images.history(a.positionals[0]);
    console.log(
      table(
        ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
        rows.map((r) => {
          const x = r as unknown as {
            id: string;
            created?: string;
            createdBy: string;
            size?: number;
            comment?: string;
          };
          return [
            x.id === '<missing>' ? x.id : short(x.id),
            x.created ? ago(x.created) : 'N/A',
            x.createdBy.slice(0, 45),
            formatBytes(x.size ?? 0),
            x.comment ?? '',
          ];
        }),
      ),
    );
    return 0;
  },
};

export const pull: Command = {
  name: 'pull',
  usage: 'pull [OPTIONS] NAME[:TAG|@DIGEST]',
  description: 'Download an image from a registry',
  flags: [
    {
      name: 'platform',
      type: 'string',
      value: 'OS/ARCH',
      description: 'Platform to pull from a multi-platform image',
    },
    insecureFlag,
  ],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const e = await withRegistry(ctx, a);
    const { digest } = await withProgress((onProgress) =>
      e.images.pull(a.positionals[0], { platform: str(a, 'platform'), onProgress }),
    );
    // Like docker: the digest of what the name points at (the index for multi-platform images).
    console.log(`Digest: ${digest}`);
    return 0;
  },
};

export const push: Command = {
  name: 'push',
  usage: 'push [OPTIONS] NAME[:TAG]',
  description: 'Upload an image to a registry',
  flags: [insecureFlag],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const e = await withRegistry(ctx, a);
    const result = await withProgress((onProgress) => e.images.push(a.positionals[0], { onProgress }));
    console.log(`Digest: ${result.digest}`);
    return 0;
  },
};

export const login: Command = {
  name: 'login',
  usage: 'login [OPTIONS] SERVER',
  description: "Log in to a registry (credentials are kept in Docker's config.json)",
  flags: [
    { name: 'username', short: 'u', type: 'string', description: 'Username' },
    { name: 'password', short: 'p', type: 'string', description: 'Password' },
    { name: 'password-stdin', type: 'boolean', description: 'Take the password from stdin' },
    insecureFlag,
  ],
  args: { min: 1, max: 1 },
  async run(a, ctx) {
    const [server] = a.positionals;
    const user = str(a, 'username');
    let password = str(a, 'password');
    if (a.flags['password-stdin']) {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      password = Buffer.concat(chunks)
        .toString()
        .replace(/\r?\n$/, '');
    }
    if (!user || password === undefined)
      throw new UsageError('give -u USER and -p PASSWORD (or --password-stdin)');
    await (await withRegistry(ctx, a)).images.login(server, user, password);
    console.log('Login Succeeded');
    return 0;
  },
};

const pruneCmd: Command = {
  name: 'image prune',
  usage: 'image prune [OPTIONS]',
  description: 'Remove dangling images (-a: every image no container uses) and unreferenced layers',
  flags: [
    { name: 'all', short: 'a', type: 'boolean', description: 'Remove all images without a container' },
    {
      name: 'force',
      short: 'f',
      type: 'boolean',
      description: 'Do not prompt for confirmation (corral never prompts)',
    },
    {
      name: 'filter',
      type: 'list',
      value: 'filter',
      description: "Only images created before a time: 'until=24h'",
    },
  ],
  args: { min: 0, max: 0 },
  async run(a, ctx) {
    let until: string | undefined;
    for (const f of list(a, 'filter')) {
      const m = /^until=(.+)$/.exec(f);
      if (!m) throw new UsageError(`unsupported filter ${f}: only until=TIME|DURATION`);
      until = m[1];
    }
    const r = await (await engine(ctx)).images.prune({ all: a.flags.all === true, until });
    for (const d of r.deletedImages) console.log(`deleted: ${d}`);
    console.log(`Total reclaimed space: ${formatBytes(r.reclaimedBytes)}`);
    return 0;
  },
};

/** `corral image prune`: Docker's management command (its other verbs are the top-level ones). */
export const image = commandGroup('image', 'Manage images', { prune: pruneCmd });

export const imageCommands = [
  images,
  load,
  save,
  importCmd,
  exportCmd,
  commitCmd,
  rmi,
  tag,
  history,
  pull,
  push,
  login,
  image,
];
