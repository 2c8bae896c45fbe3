/**
 * Static checks of the Dockerfile (parsed with dockerfile-ast) and
 * .dockerignore: a multi-stage build whose runtime stage has production
 * dependencies only, runs as a non-root user, exposes the metrics port, and
 * whose HEALTHCHECK command really reports a daemon's /healthz (it is run
 * here against the daemon's own metrics server).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';

import { CONFIG_DEFAULTS } from '../../../src/config/schema.js';
import { MetricsServer } from '../../../src/monitor/http-server.js';
import { DaemonMetrics } from '../../../src/monitor/metrics.js';
import { asMap, asString, isPinnedImage, readJsonMap, readText, repoPath } from './files.js';

const run = promisify(execFile);

const dockerfile = DockerfileParser.parse(readText(repoPath('Dockerfile')));
const instructions = dockerfile.getInstructions();
const froms = dockerfile.getFROMs();

/** The instructions of each stage, by stage name (the FROM's `AS`). */
const stages = new Map<string, Instruction[]>();
let current: Instruction[] = [];
for (const instruction of instructions) {
  if (instruction.getKeyword() === 'FROM') {
    current = [];
    const stage = froms.find((f) => f.getRange().start.line === instruction.getRange().start.line);
    stages.set(stage?.getBuildStage() ?? `#${stages.size}`, current);
  }
  current.push(instruction);
}
const finalStage = [...stages.values()].at(-1) ?? [];

/** The ARGs declared before the first FROM, with their defaults: what FROM may use. */
const globalArgs = new Map<string, string>();
for (const instruction of instructions) {
  if (instruction.getKeyword() === 'FROM') break;
  if (instruction.getKeyword() !== 'ARG') continue;
  const [name = '', ...rest] = content(instruction).trim().split('=');
  globalArgs.set(name, rest.join('='));
}

/** A FROM's image with `${ARG}` / `$ARG` replaced by the global ARG's default. */
function defaultImage(image: string): string {
  return image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_match, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? '';
    const value = globalArgs.get(name);
    if (value === undefined || value === '')
      throw new Error(`FROM uses $${name} without a default`);
    return value;
  });
}
const buildStageNames = froms.map((f) => f.getBuildStage()).filter((s) => s !== null);

function ofKind(stage: Instruction[], keyword: string): Instruction[] {
  return stage.filter((i) => i.getKeyword() === keyword);
}

function content(instruction: Instruction): string {
  return instruction.getArgumentsContent() ?? '';
}

/** The final stage's ENV values. */
function envValues(): Map<string, string> {
  const values = new Map<string, string>();
  for (const env of ofKind(finalStage, 'ENV')) {
    for (const arg of env.getArguments()) {
      const [name = '', ...rest] = arg.getValue().split('=');
      values.set(name, rest.join('='));
    }
  }
  return values;
}

/** HEALTHCHECK's exec-form command. */
function healthcheckCommand(): string[] {
  const [healthcheck] = ofKind(finalStage, 'HEALTHCHECK');
  const text = content(healthcheck as Instruction);
  const match = /^CMD\s+(\[.*\])\s*$/s.exec(text);
  if (match === null) throw new Error(`HEALTHCHECK must use CMD's exec form: ${text}`);
  const parsed: unknown = JSON.parse(match[1] ?? '');
  if (!Array.isArray(parsed)) throw new Error('HEALTHCHECK CMD is not a list');
  return parsed.map((part) => String(part));
}

describe('Dockerfile', () => {
  it('builds in one stage and runs from another, from pinned images', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) {
      const image = defaultImage(from.getImage() ?? '');
      // FROM <earlier stage> needs no pin; every registry image does.
      if (!buildStageNames.includes(image))
        expect({ image, pinned: isPinnedImage(image) }).toEqual({ image, pinned: true });
    }
    const runtimeBase = defaultImage(froms.at(-1)?.getImage() ?? '');
    expect(runtimeBase).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
  });

  it('takes both base images as build arguments, defaulting to the same pinned image', () => {
    // scripts/docker-engine.sh replaces them with a local Debian + Node.js 20 image.
    expect(froms.map((from) => from.getImage())).toEqual(['${BUILD_IMAGE}', '${RUNTIME_IMAGE}']);
    expect(globalArgs.get('BUILD_IMAGE')).toBe(globalArgs.get('RUNTIME_IMAGE'));
  });

  it('compiles in the build stage and installs production dependencies only in the runtime stage', () => {
    const buildStage = [...stages.values()][0] ?? [];
    const buildRuns = ofKind(buildStage, 'RUN').map(content);
    expect(buildRuns.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(buildRuns.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
    const runtimeRuns = ofKind(finalStage, 'RUN').map(content);
    const installs = runtimeRuns.filter((r) => /\bnpm (ci|install)\b/.test(r));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/--omit=dev\b/);
    expect(runtimeRuns.some((r) => /\bnpm run build\b/.test(r))).toBe(false);
    // The compiled output comes from the build stage, by COPY's --from flag.
    const fromBuild = dockerfile
      .getCOPYs()
      .filter((copy) =>
        finalStage.some((i) => i.getRange().start.line === copy.getRange().start.line),
      )
      .filter((copy) => copy.getFromFlag()?.getValue() === buildStageNames[0]);
    expect(fromBuild.map((copy) => copy.getArguments().map((a) => a.getValue()))).toEqual([
      ['/src/dist', './dist'],
    ]);
  });

  it('runs as a non-root user, by number', () => {
    const users = ofKind(finalStage, 'USER').map(content);
    const user = users.at(-1) ?? '';
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(user.split(':')[0]).not.toBe('0');
  });

  it('exposes the default metrics port and starts the cdc-replicator executable', () => {
    expect(ofKind(finalStage, 'EXPOSE').flatMap((i) => content(i).split(/\s+/))).toContain(
      String(CONFIG_DEFAULTS.metricsPort),
    );
    const [entrypoint] = ofKind(finalStage, 'ENTRYPOINT');
    expect(JSON.parse(content(entrypoint as Instruction))).toEqual(['cdc-replicator']);
    const bin = asString(
      asMap(readJsonMap(repoPath('package.json')).bin, 'bin')['cdc-replicator'],
      'bin',
    );
    const link = ofKind(finalStage, 'RUN')
      .map(content)
      .find((r) => r.includes('/usr/local/bin/cdc-replicator'));
    expect(link).toContain(`ln -s /app/${bin} /usr/local/bin/cdc-replicator`);
  });

  it('checks /healthz on the default metrics port', () => {
    const url = envValues().get('CDC_HEALTHCHECK_URL');
    expect(url).toBe(`http://127.0.0.1:${CONFIG_DEFAULTS.metricsPort}/healthz`);
    expect(healthcheckCommand().join(' ')).toContain('process.env.CDC_HEALTHCHECK_URL');
  });

  describe("HEALTHCHECK's command against the daemon's metrics server", () => {
    let server: MetricsServer;
    let port = 0;

    beforeAll(async () => {
      server = new MetricsServer(
        { host: '127.0.0.1', port: 0, url: 'http://127.0.0.1' },
        new DaemonMetrics({ defaultMetrics: false }),
        () => ({ ready: false, reasons: ['not started'] }),
      );
      port = await server.start();
    });

    afterAll(async () => {
      await server.stop();
    });

    async function exitCode(url: string): Promise<number> {
      const [command = '', ...args] = healthcheckCommand();
      try {
        await run(command === 'node' ? process.execPath : command, args, {
          env: { ...process.env, CDC_HEALTHCHECK_URL: url },
          timeout: 30_000,
        });
        return 0;
      } catch (error: unknown) {
        const code = (error as { code?: unknown }).code;
        return typeof code === 'number' ? code : -1;
      }
    }

    it('exits 0 while /healthz answers, 1 on an error status or no answer', async () => {
      expect(await exitCode(`http://127.0.0.1:${port}/healthz`)).toBe(0);
      // /readyz answers 503 here: a failing status must fail the check.
      expect(await exitCode(`http://127.0.0.1:${port}/readyz`)).toBe(1);
      await server.stop();
      expect(await exitCode(`http://127.0.0.1:${port}/healthz`)).toBe(1);
    });
  });
});

describe('.dockerignore', () => {
  const patterns = readText(repoPath('.dockerignore'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('keeps local state and build output out of the context', () => {
    for (const path of ['.git', 'node_modules', 'dist', '.cdc-state', '.env'])
      expect(patterns).toContain(path);
  });

  it('keeps everything the Dockerfile copies from the context', () => {
    const sources = dockerfile
      .getCOPYs()
      .filter((copy) => copy.getFromFlag() === null)
      .flatMap((copy) =>
        copy
          .getArguments()
          .slice(0, -1)
          .map((a) => a.getValue()),
      );
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src']));
    for (const source of sources) expect(patterns).not.toContain(source);
  });
});
