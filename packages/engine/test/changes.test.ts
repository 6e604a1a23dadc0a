import { describe, expect, it } from 'vitest';
import { applyChanges, splitWords } from '../src/changes.js';

// docker commit/import --change: Dockerfile instructions over an image config.
describe('applyChanges', () => {
  const base = { Env: ['PATH=/bin', 'A=old'], Cmd: ['sh'], Labels: { keep: '1' } };

  it('applies each instruction as Docker does, leaving the input as it was', () => {
    const out = applyChanges(base, [
      'CMD echo hi',
      'ENTRYPOINT ["/init", "--"]',
      'ENV A=new B="two words"',
      'ENV C $A and more',
      'env D=\\$A',
      'LABEL x=y',
      'EXPOSE 53/udp 8000-8001',
      'VOLUME /a /b',
      'USER 1000:1000',
      'WORKDIR /w',
      'WORKDIR ../x',
      'STOPSIGNAL SIGTERM',
    ]);
    expect(out.Cmd).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(out.Entrypoint).toEqual(['/init', '--']);
    expect(out.Env).toEqual(['PATH=/bin', 'A=new', 'B=two words', 'C=new and more', 'D=$A']);
    expect(out.Labels).toEqual({ keep: '1', x: 'y' });
    expect(out.ExposedPorts).toEqual({ '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} });
    expect(out.Volumes).toEqual({ '/a': {}, '/b': {} });
    expect(out.User).toBe('1000:1000');
    expect(out.WorkingDir).toBe('/x');
    expect(out.StopSignal).toBe('SIGTERM');
    expect(base).toEqual({ Env: ['PATH=/bin', 'A=old'], Cmd: ['sh'], Labels: { keep: '1' } });
  });

  it('substitutes $VAR and braced variables from the environment so far', () => {
    expect(applyChanges({ Env: ['H=/home'] }, [`ENV P=\${H}/bin:$H`, 'WORKDIR $H/w']).WorkingDir).toBe(
      '/home/w',
    );
    expect(applyChanges({ Env: ['H=/home'] }, [`ENV P=\${H}/bin:$H`]).Env).toEqual([
      'H=/home',
      'P=/home/bin:/home',
    ]);
  });

  it('refuses what is not a change, naming it', () => {
    expect(() => applyChanges({}, ['RUN rm -rf /'])).toThrow(
      'invalid change "RUN rm -rf /": RUN is not a valid change command',
    );
    expect(() => applyChanges({}, ['EXPOSE 70000'])).toThrow('invalid port range "70000"');
    expect(() => applyChanges({}, ['EXPOSE http'])).toThrow('invalid port "http"');
    expect(() => applyChanges({}, ['ENV =x'])).toThrow('is not KEY=VALUE');
    expect(() => applyChanges({}, ['LABEL a="open'])).toThrow('unterminated " quote');
    expect(() => applyChanges({}, ['USER a b'])).toThrow('exactly one argument');
    expect(() => applyChanges({}, ['WORKDIR'])).toThrow('it needs a path');
  });

  it('splits words with quotes and escapes', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g`)).toEqual(['a', 'b c', 'd e', 'f g']);
    // \$ stays escaped for the substitution after it.
    expect(applyChanges({ Env: ['A=1'] }, ['LABEL l="\\$A $A"']).Labels).toEqual({ l: '$A 1' });
  });
});
