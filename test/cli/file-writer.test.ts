import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/cli/exit-codes.js';
import { FileWriter } from '../../src/cli/file-writer.js';

/** The campaign's writing thread: every file whole, in order, and a failure in one line. */

const tmp = mkdtempSync(join(tmpdir(), 'migfuzz-file-writer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('FileWriter', () => {
  it('writes every file whole by close(), the last write of a file winning, no temporary left', () => {
    const dir = join(tmp, 'ok');
    mkdirSync(dir);
    const w = new FileWriter();
    for (let i = 0; i < 50; i++) {
      w.write(join(dir, `entry-${i}.json`), `{"n": ${i}}\n`);
      w.write(join(dir, 'stats.json'), `{"last": ${i}}\n`);
      if (i % 7 === 0) w.flush();
    }
    w.write(join(dir, 'trace.mpk'), new Uint8Array([0x82, 1, 2, 3]), { durable: true });
    w.close();
    const names = readdirSync(dir);
    expect(names).toHaveLength(52);
    expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
    for (let i = 0; i < 50; i++)
      expect(readFileSync(join(dir, `entry-${i}.json`), 'utf8')).toBe(`{"n": ${i}}\n`);
    expect(readFileSync(join(dir, 'stats.json'), 'utf8')).toBe('{"last": 49}\n');
    expect([...readFileSync(join(dir, 'trace.mpk'))]).toEqual([0x82, 1, 2, 3]);
  });

  it('a failed write: close() throws its one line, later writes are refused and not made', () => {
    const dir = join(tmp, 'fails');
    mkdirSync(dir);
    // The temporary name taken by a directory: opening it fails as a full disk would.
    mkdirSync(join(dir, `b.json.tmp-${process.pid}`));
    const w = new FileWriter();
    w.write(join(dir, 'a.json'), 'a\n');
    w.write(join(dir, 'b.json'), 'b\n');
    w.write(join(dir, 'c.json'), 'c\n');
    const failure = `${join(dir, 'b.json')}: cannot write (is a directory)`;
    expect(() => w.close()).toThrow(new InputError(failure));
    expect(() => w.write(join(dir, 'd.json'), 'd\n')).toThrow(InputError);
    expect(readdirSync(dir).sort()).toEqual(['a.json', `b.json.tmp-${process.pid}`]);
    expect(readFileSync(join(dir, 'a.json'), 'utf8')).toBe('a\n');
  });
});
