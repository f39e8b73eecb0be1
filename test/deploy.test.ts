import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { fuzzSettings } from '../src/cli/fuzz-settings.js';
import { mergeArgs } from '../src/cli/merge-command.js';
import { statusArgs } from '../src/cli/status-command.js';
import { ROOT } from './replay/helpers.js';

/**
 * deploy/ (issue 15): the container image, the Kubernetes Indexed Job and the CI workflow
 * are parsed, and the exact migfuzz command lines in them go through the CLI's own argument
 * parsers, so they cannot drift from the CLI.
 */

const read = (f: string) => readFileSync(join(ROOT, 'deploy', f), 'utf8');
const noFile = () => {
  throw new Error('no file is read');
};

/** A migfuzz command line's arguments through the parser of its command. */
function parseCommand(argv: string[]) {
  const [cmd, ...rest] = argv;
  if (cmd === 'fuzz') return { cmd, settings: fuzzSettings(rest, noFile, 0) };
  if (cmd === 'corpus' && rest[0] === 'merge')
    return { cmd: 'corpus merge', settings: mergeArgs(rest.slice(1)) };
  if (cmd === 'status') return { cmd, settings: statusArgs(rest) };
  throw new Error(`no parser for ${argv.join(' ')}`);
}

describe('deploy/', () => {
  it('the image: node 20 slim, production dependencies, migfuzz as entrypoint, a campaign by default', () => {
    const text = read('Dockerfile');
    expect(text).toMatch(/^FROM node:20-slim\b/m);
    expect(text).toMatch(/npm ci --omit=dev/);
    const json = (directive: string) =>
      JSON.parse(new RegExp(`^${directive} (\\[.*\\])$`, 'm').exec(text)![1]!) as string[];
    expect(json('ENTRYPOINT')).toEqual(['node', '--single-threaded-gc', '/app/dist/src/cli/bin.js']);
    expect(parseCommand(json('CMD')).settings).toMatchObject({ timeMs: 60_000 });
  });

  it('the Indexed Job: one instance per index on a shared sync dir, seed from the index, one core each', () => {
    const [pvc, job] = read('k8s/campaign-job.yaml')
      .split(/^---$/m)
      .map((d) => parse(d));
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(job.kind).toBe('Job');
    expect(job.spec.completionMode).toBe('Indexed');
    const c = job.spec.template.spec.containers[0];
    expect(c.resources.requests.cpu).toBe('1');
    expect(c.volumeMounts[0].mountPath).toBe('/sync');
    expect(job.spec.template.spec.volumes[0].persistentVolumeClaim.claimName).toBe(pvc.metadata.name);
    // The container's command, as its shell expands it for index 3.
    const script = [...c.command.slice(1), ...c.args].join(' ').replace(/^-c /, '');
    const argv = execFileSync('sh', ['-c', script.replace(/^exec /, 'printf "%s\\n" '), 'sh'], {
      env: { JOB_COMPLETION_INDEX: '3', PATH: process.env.PATH },
      encoding: 'utf8',
    })
      .trim()
      .split('\n');
    expect(argv.slice(0, 3)).toEqual(['node', '--single-threaded-gc', '/app/dist/src/cli/bin.js']);
    const { settings } = parseCommand(argv.slice(3));
    expect(settings).toMatchObject({
      sync: { dir: '/sync', instance: 'i3' },
      seed: 1003,
      timeMs: 3_600_000,
      out: '/sync/i3',
    });
  });

  it('the CI workflow: sharded campaigns with their own seeds, then a merge job', () => {
    const wf = parse(read('ci/sharded-campaign.yml'));
    const shards: number[] = wf.jobs.shard.strategy.matrix.shard;
    expect(shards.length).toBeGreaterThan(1);
    expect(wf.jobs.merge.needs).toBe('shard');
    const runs = (job: { steps: { run?: string }[] }, shard?: number) =>
      job.steps
        .map((s) => s.run)
        .filter((r): r is string => r?.startsWith('npx migfuzz ') === true)
        .map((r) =>
          r
            .replace(/\$\{\{ matrix\.shard \}\}/g, String(shard))
            .split(/\s+/)
            .slice(2),
        );
    const seeds = shards.map((n) => {
      const [fuzz] = runs(wf.jobs.shard, n);
      const { settings } = parseCommand(fuzz!) as { settings: { seed: number; out: string } };
      expect(settings.out).toBe(`out-${n}`);
      return settings.seed;
    });
    expect(new Set(seeds).size).toBe(shards.length);
    const merge = runs(wf.jobs.merge).map((argv) => parseCommand(argv));
    expect(merge.map((m) => m.cmd)).toEqual(['corpus merge', 'status']);
    expect(merge[0]!.settings).toMatchObject({ dirs: ['shards'], into: 'merged' });
  });
});
