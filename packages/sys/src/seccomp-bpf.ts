// A small classic-BPF assembler for seccomp filters: instructions with symbolic jump targets,
// laid out and encoded as struct sock_filter. Conditional jumps reach 255 instructions ahead
// at most; a longer one is routed through an unconditional jump (32-bit offset) placed right
// after it, so any program that fits the kernel's 4096 instructions can be written flat.

// Opcodes (linux/filter.h).
const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const JMP_JA = 0x05;
const RET_K = 0x06;
export const JEQ = 0x15;
export const JGT = 0x25;
export const JGE = 0x35;

/** The kernel's limit on a filter's length (BPF_MAXINSNS). */
export const MAX_INSNS = 4096;

/** A jump target: a label, or `null` for the next instruction. */
export type Target = string | null;

export type Insn =
  | { label: string }
  | { ld: number }
  | { and: number }
  | { ret: number }
  | { ja: string }
  | { jmp: typeof JEQ | typeof JGT | typeof JGE; k: number; jt: Target; jf: Target };

/** Builds a program; labels are made unique with `label()`. */
export class Assembler {
  readonly insns: Insn[] = [];
  private n = 0;

  label(hint: string): string {
    return `${hint}#${this.n++}`;
  }

  put(...insns: Insn[]): void {
    this.insns.push(...insns);
  }

  /** Lays the program out and encodes it; too long a program is an error. */
  assemble(): Buffer {
    const insns = routeLongJumps(this.insns);
    const at = positions(insns);
    const code = insns.filter((i) => !('label' in i));
    if (code.length > MAX_INSNS)
      throw new RangeError(
        `seccomp: the filter has ${code.length} instructions, more than the kernel's ${MAX_INSNS}`,
      );
    const buf = Buffer.alloc(code.length * 8);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const rel = (t: Target, pc: number) => (t === null ? 0 : offset(at, t, pc));
    const put = (pc: number, op: number, k: number, jt = 0, jf = 0) => {
      view.setUint16(pc * 8, op, true);
      view.setUint8(pc * 8 + 2, jt);
      view.setUint8(pc * 8 + 3, jf);
      view.setUint32(pc * 8 + 4, k >>> 0, true);
    };
    for (let pc = 0; pc < code.length; pc++) {
      const insn = code[pc];
      if ('ld' in insn) put(pc, LD_W_ABS, insn.ld);
      else if ('and' in insn) put(pc, ALU_AND_K, insn.and);
      else if ('ret' in insn) put(pc, RET_K, insn.ret);
      else if ('ja' in insn) put(pc, JMP_JA, rel(insn.ja, pc));
      else if ('jmp' in insn) put(pc, insn.jmp, insn.k, rel(insn.jt, pc), rel(insn.jf, pc));
    }
    return buf;
  }
}

/** Where each label points: the index of the next real instruction. */
function positions(insns: readonly Insn[]): Map<string, number> {
  const at = new Map<string, number>();
  let pc = 0;
  for (const i of insns) {
    if ('label' in i) {
      if (at.has(i.label)) throw new Error(`seccomp: label ${i.label} defined twice`);
      at.set(i.label, pc);
    } else pc++;
  }
  return at;
}

function offset(at: Map<string, number>, label: string, pc: number): number {
  const to = at.get(label);
  if (to === undefined) throw new Error(`seccomp: jump to undefined label ${label}`);
  if (to <= pc) throw new Error(`seccomp: backward jump to ${label}`);
  return to - pc - 1;
}

/**
 * Gives every conditional jump that reaches further than 255 instructions a trampoline: an
 * unconditional jump right after it. Inserting them only lengthens other jumps, so this repeats
 * until none is too long (twice at most for real profiles).
 */
function routeLongJumps(input: readonly Insn[]): Insn[] {
  let insns = input.slice();
  let made = 0;
  for (;;) {
    const at = positions(insns);
    const out: Insn[] = [];
    let pc = 0;
    for (const insn of insns) {
      if ('label' in insn) {
        out.push(insn);
        continue;
      }
      const here = pc++;
      const far = (t: Target) => t !== null && offset(at, t, here) > 255;
      if (!('jmp' in insn) || !(far(insn.jt) || far(insn.jf))) {
        out.push(insn);
        continue;
      }
      const jump = { ...insn };
      const after: Insn[] = [];
      for (const side of ['jt', 'jf'] as const) {
        const t = insn[side];
        if (t === null || !far(t)) continue;
        const tramp = `trampoline#${made++}`;
        jump[side] = tramp;
        after.push({ label: tramp }, { ja: t });
      }
      const next = `after-trampoline#${made++}`;
      if (jump.jt === null) jump.jt = next;
      if (jump.jf === null) jump.jf = next;
      out.push(jump, ...after, { label: next });
    }
    if (out.length === insns.length) return insns;
    insns = out;
  }
}
