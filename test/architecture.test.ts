/**
 * The layering of src/: every import and re-export (`import type` included) is parsed, each file
 * is mapped to its folder (root files such as `errors.ts` are layers of their own), and the
 * imports must go down the declared order, form no cycle between folders, and enter another
 * folder only through its `index.ts`. Files over 400 lines must say why in their first lines.
 * Test files (`*.test.ts`) may import anything and are only held to the line limit.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.js';

const SRC = path.join(ROOT, 'src');

/** Layers, lowest first. A unit imports only units of lower layers (or its own folder). */
const LAYERS: string[][] = [
  ['errors'],
  ['actor'],
  ['kernels'],
  ['backend'],
  ['wire'],
  ['transport'],
  ['optim'],
  ['data'],
  ['protocol'],
  ['gate', 'sentinel'],
  ['models'],
  ['ps'],
  ['deploy'],
  ['network', 'parallel'],
  ['persist'],
  ['cluster'],
  ['apps'],
  ['index'],
];

/** Edges allowed between units of the same layer (none today). */
const SAME_LAYER_ALLOWED: string[] = [];

/** Imports into another folder that do not go through its index, each with its reason. */
const DEEP_IMPORT_EXCEPTIONS: Record<string, string> = {
  'deploy/node-main.ts -> transport/channel.ts': 'the node entry is the child end of the channel protocol, whose internals stay off the public index',
};

const LINE_LIMIT = 400;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : name.endsWith('.ts') ? [full] : [];
  });
}

const rel = (file: string) => path.relative(SRC, file).split(path.sep).join('/');
/** The unit of a file: its folder, or the file's name for a root file (`errors.ts` -> `errors`). */
const unitOf = (relPath: string) => (relPath.includes('/') ? relPath.split('/')[0]! : relPath.replace(/\.ts$/, ''));
const layerOf = new Map(LAYERS.flatMap((units, i) => units.map((u) => [u, i] as const)));

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/g;

interface Edge {
  from: string;
  to: string;
  fromUnit: string;
  toUnit: string;
}

function edgesOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const edges: Edge[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1]!;
    if (!spec.startsWith('.')) continue;
    const target = rel(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
    const from = rel(file);
    edges.push({ from, to: target, fromUnit: unitOf(from), toUnit: unitOf(target) });
  }
  return edges;
}

const files = walk(SRC);
const sources = files.filter((f) => !f.endsWith('.test.ts'));
const edges = sources.flatMap(edgesOf).filter((e) => e.fromUnit !== e.toUnit);

test('every unit of src/ has a layer', () => {
  const unknown = [...new Set(sources.map((f) => unitOf(rel(f))))].filter((u) => !layerOf.has(u));
  expect(unknown).toEqual([]);
});

test('imports go down the layer order', () => {
  const bad = edges
    .filter((e) => {
      const a = layerOf.get(e.fromUnit);
      const b = layerOf.get(e.toUnit);
      if (a === undefined || b === undefined) return true;
      return b > a || (a === b && !SAME_LAYER_ALLOWED.includes(`${e.fromUnit} -> ${e.toUnit}`));
    })
    .map((e) => `${e.from} imports ${e.to} (${e.fromUnit} -> ${e.toUnit} goes up or sideways)`);
  expect(bad).toEqual([]);
});

test('no import cycle between folders', () => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!graph.has(e.fromUnit)) graph.set(e.fromUnit, new Set());
    graph.get(e.fromUnit)!.add(e.toUnit);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (unit: string, trail: string[]) => {
    if (state.get(unit) === 'done') return;
    if (state.get(unit) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(unit)), unit].join(' -> '));
      return;
    }
    state.set(unit, 'open');
    for (const next of graph.get(unit) ?? []) visit(next, [...trail, unit]);
    state.set(unit, 'done');
  };
  for (const unit of graph.keys()) visit(unit, []);
  expect(cycles).toEqual([]);
});

test('another folder is entered only through its index.ts', () => {
  const deep = edges
    .filter((e) => e.to.includes('/') && !e.to.endsWith('/index.ts'))
    .map((e) => `${e.from} -> ${e.to}`)
    .filter((edge) => !(edge in DEEP_IMPORT_EXCEPTIONS));
  expect(deep).toEqual([]);
});

test('the deep-import exceptions are still needed', () => {
  const used = new Set(edges.map((e) => `${e.from} -> ${e.to}`));
  expect(Object.keys(DEEP_IMPORT_EXCEPTIONS).filter((edge) => !used.has(edge))).toEqual([]);
});

test(`no file in src/ over ${LINE_LIMIT} lines without a reason in its first 3 lines`, () => {
  const long = files
    .map((f) => ({ file: rel(f), lines: readFileSync(f, 'utf8').split('\n') }))
    .filter(({ lines }) => lines.length - (lines.at(-1) === '' ? 1 : 0) > LINE_LIMIT)
    .filter(({ lines }) => !lines.slice(0, 3).some((l) => /^\s*(\/\/|\/?\*+)\s*Over 400 lines:\s*\S/.test(l)))
    .map(({ file, lines }) => `${file}: ${lines.length} lines, no 'Over 400 lines:' comment`);
  expect(long).toEqual([]);
});

/**
 * (d) Examples import only the package (`akkordeon` or a subpath such as `akkordeon/apps`, each
 * an existing folder with an index), tfjs for layers, and Node's own modules: they show what a
 * user's code looks like.
 */
function exampleImportsOutsidePackage(): string[] {
  const dir = path.join(ROOT, 'examples');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.ts'))
    .flatMap((n) => [...readFileSync(path.join(dir, n), 'utf8').matchAll(IMPORT)].map((m) => ({ file: `examples/${n}`, target: m[1] as string })))
    .filter(({ target }) => {
      const subpath = /^akkordeon\/([a-z-]+)$/.exec(target);
      if (subpath) return !existsSync(path.join(ROOT, 'src', subpath[1] as string, 'index.ts'));
      return !(target === 'akkordeon' || target === '@tensorflow/tfjs' || target.startsWith('node:'));
    })
    .map(({ file, target }) => `${file} imports ${target}`);
}

test("examples import only from 'akkordeon' (and tfjs, node:)", () => {
  expect(exampleImportsOutsidePackage()).toEqual([]);
});

test('the root entry stays curated: about 40 names besides the errors', async () => {
  const root = await import('../src/index.js');
  const errors = await import('../src/errors.js');
  const names = Object.keys(root).filter((name) => !(name in errors));
  expect(names.length).toBeLessThanOrEqual(40); // runtime names; types are not counted
  expect(names).toEqual(expect.arrayContaining(['Network', 'Sentinel', 'describeNetwork', 'DCASGD', 'ArrayProvider', 'saveCheckpoint', 'initBackend']));
});
