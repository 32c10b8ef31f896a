// Over 400 lines: the kernels share one generated WebAssembly module, its heap views and its loader.
/**
 * Fused kernels for the wasm backend: optimizer steps, the finiteness check gates run on every
 * input and gradient ({@link allFinite}), and the matrix transposes of dense backward passes
 * ({@link transpose2d}). An optimizer step is one pass of WebAssembly SIMD (f32x4) over a
 * parameter, its gradient and its slots, in place of the 8 to 16 elementwise tfjs kernels an
 * update otherwise takes. Each kernel reads its inputs straight from the tfjs wasm heap (the
 * module imports tfjs's own `WebAssembly.Memory`) and writes freshly allocated output tensors,
 * so inputs stay untouched for weight stashing.
 *
 * Every kernel performs the same float32 operations in the same order as the tfjs path of
 * {@link SGD}, {@link DCASGD} and {@link Adam}, so results are bit-identical; the tests check that. Where the
 * kernels are not loaded (another backend, or `useFusedKernels(false)`), the optimizers use tfjs
 * ops.
 *
 * The optimizer kernels are written as expression trees below, from which both the 4-lane SIMD
 * loop and the scalar loop for the last `n mod 4` elements are generated as WebAssembly text;
 * the module is compiled by `wabt` once per thread in {@link loadFusedKernels}.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';

/** One expression, as WebAssembly text for the 4-lane loop (`v`) and the scalar tail (`s`). */
interface Expr {
  v: string;
  s: string;
}

/** Pointer parameters shared by every kernel: inputs, then outputs (byte offsets in the heap). */
const POINTERS = ['w', 'g', 'wf', 'ms', 'v', 'ow', 'oms', 'ov'] as const;
type Pointer = (typeof POINTERS)[number];
/** Scalar hyper-parameters shared by every kernel (float32). */
const SCALARS = ['a', 'b', 'c', 'd', 'eps', 'mu', 'lr'] as const;
type Scalar = (typeof SCALARS)[number];

const at = (p: Pointer) => `(i32.add (local.get $${p}) (local.get $i))`;
const load = (p: Pointer): Expr => ({ v: `(v128.load ${at(p)})`, s: `(f32.load ${at(p)})` });
const param = (p: Scalar): Expr => ({ v: `(local.get $${p}_x4)`, s: `(local.get $${p})` });
const binary =
  (op: string) =>
  (x: Expr, y: Expr): Expr => ({ v: `(f32x4.${op} ${x.v} ${y.v})`, s: `(f32.${op} ${x.s} ${y.s})` });
const add = binary('add');
const sub = binary('sub');
const mul = binary('mul');
const div = binary('div');
const sqrt = (x: Expr): Expr => ({ v: `(f32x4.sqrt ${x.v})`, s: `(f32.sqrt ${x.s})` });

/** A kernel body: named intermediate values (`let`) and stores to output pointers. */
type Statement = { let: string; value: Expr } | { store: Pointer; value: Expr };

/** Builds a kernel body from a function that may bind names with `bind`. */
function body(build: (bind: (name: string, value: Expr) => Expr, store: (p: Pointer, value: Expr) => void) => void): Statement[] {
  const statements: Statement[] = [];
  build(
    (name, value) => {
      statements.push({ let: name, value });
      return { v: `(local.get $${name}_x4)`, s: `(local.get $${name}_x1)` };
    },
    (p, value) => void statements.push({ store: p, value }),
  );
  return statements;
}

/**
 * The kernels. Hyper-parameters by kernel: `a`, `b`, `c`, `d` are the DC-ASGD or Adam constants
 * (see each), `mu` the momentum, `lr` the learning rate (Adam: its bias-corrected step size).
 * Each mirrors the tfjs code of `optimizers.ts`.
 */
function kernels(): Record<string, Statement[]> {
  // SGD direction: v ← μ v + g̃; w ← w − η v (momentum), or w ← w − η g̃ (none).
  const step = (withMomentum: boolean, gt: Expr, w: Expr, bind: (n: string, e: Expr) => Expr, store: (p: Pointer, e: Expr) => void) => {
    if (!withMomentum) return store('ow', sub(w, mul(gt, param('lr'))));
    const v = bind('v2', add(mul(load('v'), param('mu')), gt));
    store('ov', v);
    store('ow', sub(w, mul(v, param('lr'))));
  };
  const out: Record<string, Statement[]> = {};
  for (const momentum of [false, true]) {
    const suffix = momentum ? '_momentum' : '';
    // Plain SGD (also DC-ASGD-c on a fresh gradient).
    out[`sgd${suffix}`] = body((bind, store) => step(momentum, load('g'), bind('w', load('w')), bind, store));
    // DC-ASGD-c, stale: g̃ = g + (λ g²) ⊙ (w − w_fwd); a = λ.
    out[`dc_constant${suffix}`] = body((bind, store) => {
      const g = bind('g', load('g'));
      const w = bind('w', load('w'));
      step(momentum, add(g, mul(mul(mul(g, g), param('a')), sub(w, load('wf')))), w, bind, store);
    });
    // DC-ASGD-a: meanSquare ← m·meanSquare + (1 − m)·g²; a = m, b = 1 − m, c = λ0.
    for (const stale of [false, true]) {
      out[`dc_adaptive${stale ? '_stale' : ''}${suffix}`] = body((bind, store) => {
        const g = bind('g', load('g'));
        const g2 = bind('g2', mul(g, g));
        const ms = bind('ms2', add(mul(load('ms'), param('a')), mul(g2, param('b'))));
        store('oms', ms);
        const w = bind('w', load('w'));
        const gt = stale ? add(g, mul(mul(div(g2, sqrt(add(ms, param('eps')))), param('c')), sub(w, load('wf')))) : g;
        step(momentum, gt, w, bind, store);
      });
    }
  }
  // Adam (Kingma & Ba, ICLR 2015, Algorithm 1), moments in the `ms` (m) and `v` (v) slots:
  // m ← β1 m + (1 − β1) g; v ← β2 v + (1 − β2) g²; w ← w − α_t m / (√v + ε).
  // a = β1, b = 1 − β1, c = β2, d = 1 − β2, lr = α_t.
  out.adam = body((bind, store) => {
    const g = bind('g', load('g'));
    const m = bind('m2', add(mul(load('ms'), param('a')), mul(g, param('b'))));
    store('oms', m);
    const v = bind('v2', add(mul(load('v'), param('c')), mul(mul(g, g), param('d'))));
    store('ov', v);
    store('ow', sub(load('w'), mul(div(m, add(sqrt(v), param('eps'))), param('lr'))));
  });
  return out;
}

/** WebAssembly text of one kernel: a 4-lane loop over `n & ~3` elements, then a scalar loop. */
function kernelText(name: string, statements: Statement[]): string {
  const names = [...new Set(statements.flatMap((s) => ('let' in s ? [s.let] : [])))];
  const emit = (lane: 'v' | 's') =>
    statements
      .map((s) =>
        'let' in s
          ? `(local.set $${s.let}_${lane === 'v' ? 'x4' : 'x1'} ${s.value[lane]})`
          : lane === 'v'
            ? `(v128.store ${at(s.store)} ${s.value.v})`
            : `(f32.store ${at(s.store)} ${s.value.s})`,
      )
      .join('\n      ');
  return `
  (func (export "${name}")
    ${POINTERS.map((p) => `(param $${p} i32)`).join(' ')} (param $n i32)
    ${SCALARS.map((p) => `(param $${p} f32)`).join(' ')}
    (local $i i32) (local $end i32) (local $bytes i32)
    ${SCALARS.map((p) => `(local $${p}_x4 v128)`).join(' ')}
    ${names.map((n) => `(local $${n}_x4 v128) (local $${n}_x1 f32)`).join(' ')}
    ${SCALARS.map((p) => `(local.set $${p}_x4 (f32x4.splat (local.get $${p})))`).join(' ')}
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (block $simd_done (loop $simd
      (br_if $simd_done (i32.ge_u (local.get $i) (local.get $end)))
      ${emit('v')}
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $simd)))
    (block $done (loop $scalar
      (br_if $done (i32.ge_u (local.get $i) (local.get $bytes)))
      ${emit('s')}
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $scalar))))`;
}

/**
 * `all_finite(p, n)`: 1 when none of the `n` float32 values at byte offset `p` is NaN or ±∞
 * (exponent bits all ones), else 0. One read pass, 4 lanes at a time.
 */
const ALL_FINITE = `
  (func (export "all_finite") (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $end i32) (local $bytes i32) (local $seen v128) (local $exponent v128)
    (local.set $exponent (i32x4.splat (i32.const 0x7f800000)))
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (block $simd_done (loop $simd
      (br_if $simd_done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $seen (v128.or (local.get $seen)
        (i32x4.eq (v128.and (v128.load (i32.add (local.get $p) (local.get $i))) (local.get $exponent)) (local.get $exponent))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $simd)))
    (if (v128.any_true (local.get $seen)) (then (return (i32.const 0))))
    (block $done (loop $scalar
      (br_if $done (i32.ge_u (local.get $i) (local.get $bytes)))
      (if (i32.eq (i32.and (i32.load (i32.add (local.get $p) (local.get $i))) (i32.const 0x7f800000)) (i32.const 0x7f800000))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $scalar)))
    (i32.const 1))`;

/** `i8x16.shuffle` lane bytes picking 32-bit lanes `lanes` (0-3 from the first operand, 4-7 the second). */
const pick = (...lanes: number[]) => lanes.flatMap((l) => [0, 1, 2, 3].map((b) => 4 * l + b)).join(' ');

/** Scalar copy of `src[r][c]` to `dst[c][r]` (the edges that do not fill a 4 × 4 block). */
const COPY_ONE = `(f32.store (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r)) (i32.const 2)))
          (f32.load (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2)))))`;

/**
 * `transpose(src, dst, rows, cols)`: `dst[c][r] = src[r][c]` for a row-major float32 matrix of
 * `rows × cols` at byte offset `src`, written to `dst` (`cols × rows`). Blocks of 4 × 4 are
 * transposed in registers with shuffles, 4 target rows at a time, so that the stores run
 * along the target rows: walking the source rows instead made power-of-two row lengths (512
 * rows) 8 to 15 times slower. The last `cols mod 4` columns and `rows mod 4` rows are copied
 * one value at a time.
 */
const TRANSPOSE = `
  (func (export "transpose") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $rows4 i32) (local $cols4 i32) (local $rowBytes i32) (local $colBytes i32)
    (local $in i32) (local $out i32) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $colBytes (i32.shl (local.get $rows) (i32.const 2)))
    (block $cols_done (loop $col_blocks
      (br_if $cols_done (i32.ge_u (local.get $c) (local.get $cols4)))
      (local.set $r (i32.const 0))
      (block $rows_done (loop $row_blocks
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows4)))
        (local.set $in (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2))))
        (local.set $a0 (v128.load (local.get $in)))
        (local.set $a1 (v128.load (i32.add (local.get $in) (local.get $rowBytes))))
        (local.set $a2 (v128.load (i32.add (local.get $in) (i32.shl (local.get $rowBytes) (i32.const 1)))))
        (local.set $a3 (v128.load (i32.add (local.get $in) (i32.mul (local.get $rowBytes) (i32.const 3)))))
        (local.set $t0 (i8x16.shuffle ${pick(0, 4, 1, 5)} (local.get $a0) (local.get $a1)))
        (local.set $t1 (i8x16.shuffle ${pick(2, 6, 3, 7)} (local.get $a0) (local.get $a1)))
        (local.set $t2 (i8x16.shuffle ${pick(0, 4, 1, 5)} (local.get $a2) (local.get $a3)))
        (local.set $t3 (i8x16.shuffle ${pick(2, 6, 3, 7)} (local.get $a2) (local.get $a3)))
        (local.set $out (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r)) (i32.const 2))))
        (v128.store (local.get $out) (i8x16.shuffle ${pick(0, 1, 4, 5)} (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $out) (local.get $colBytes)) (i8x16.shuffle ${pick(2, 3, 6, 7)} (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $out) (i32.shl (local.get $colBytes) (i32.const 1))) (i8x16.shuffle ${pick(0, 1, 4, 5)} (local.get $t1) (local.get $t3)))
        (v128.store (i32.add (local.get $out) (i32.mul (local.get $colBytes) (i32.const 3))) (i8x16.shuffle ${pick(2, 3, 6, 7)} (local.get $t1) (local.get $t3)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $row_blocks)))
      ;; The rows below the last block, for these 4 columns.
      (block $tail_done (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $r) (local.get $rows)))
        ${COPY_ONE}
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        ${COPY_ONE}
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        ${COPY_ONE}
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        ${COPY_ONE}
        (local.set $c (i32.sub (local.get $c) (i32.const 3)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $tail)))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $col_blocks)))
    ;; The columns right of the last block, every row.
    (block $edge_done (loop $edge
      (br_if $edge_done (i32.ge_u (local.get $c) (local.get $cols)))
      (local.set $r (i32.const 0))
      (block $edge_rows_done (loop $edge_rows
        (br_if $edge_rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        ${COPY_ONE}
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $edge_rows)))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $edge))))`;

/**
 * `count_nonzero(p, n)`: how many of the `n` float32 values at byte offset `p` are not ±0
 * (NaN counts as non-zero). 4 lanes at a time, then a scalar tail.
 */
const COUNT_NONZERO = `
  (func (export "count_nonzero") (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $end i32) (local $bytes i32) (local $count v128) (local $total i32)
    (local.set $end (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (block $simd_done (loop $simd
      (br_if $simd_done (i32.ge_u (local.get $i) (local.get $end)))
      ;; f32x4.ne gives -1 in each lane that is non-zero.
      (local.set $count (i32x4.sub (local.get $count)
        (f32x4.ne (v128.load (i32.add (local.get $p) (local.get $i))) (v128.const i32x4 0 0 0 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $simd)))
    (local.set $total (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $count)) (i32x4.extract_lane 1 (local.get $count)))
      (i32.add (i32x4.extract_lane 2 (local.get $count)) (i32x4.extract_lane 3 (local.get $count)))))
    (block $done (loop $scalar
      (br_if $done (i32.ge_u (local.get $i) (local.get $bytes)))
      (local.set $total (i32.add (local.get $total) (f32.ne (f32.load (i32.add (local.get $p) (local.get $i))) (f32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $scalar)))
    (local.get $total))`;

/**
 * `compress_rows(a, rows, cols, stride, ptr, pairs)`: the non-zero values of the row-major
 * `rows × cols` float32 matrix at `a`, row by row (compressed sparse rows). Entry `e` is the
 * pair at `pairs + 8e`: the i32 `column × stride` (the byte offset of the row of the right-hand
 * matrix it multiplies, in {@link SPMM}) and the f32 value. `ptr[r]` (i32, `rows + 1` of them)
 * is the byte offset in `pairs` where row `r` starts; `ptr[rows]` is where the last one ends.
 * Blocks of 4 zeros are skipped with one SIMD test; within a block, every value is written and
 * the entry count advances only past non-zero ones, so the loop does not branch on data.
 */
const COMPRESS_ROWS = `
  (func (export "compress_rows") (param $a i32) (param $rows i32) (param $cols i32) (param $stride i32) (param $ptr i32) (param $pairs i32)
    (local $r i32) (local $c i32) (local $cols4 i32) (local $row i32) (local $e i32) (local $x f32) (local $k i32)
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $e (local.get $pairs))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (i32.store (i32.add (local.get $ptr) (i32.shl (local.get $r) (i32.const 2))) (i32.sub (local.get $e) (local.get $pairs)))
      (local.set $row (i32.add (local.get $a) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2))))
      (local.set $c (i32.const 0))
      (block $blocks_done (loop $blocks
        (br_if $blocks_done (i32.ge_u (local.get $c) (local.get $cols4)))
        (if (v128.any_true (f32x4.ne (v128.load (i32.add (local.get $row) (i32.shl (local.get $c) (i32.const 2)))) (v128.const i32x4 0 0 0 0)))
          (then
            (local.set $k (i32.add (local.get $c) (i32.const 4)))
            (loop $within
              (local.set $x (f32.load (i32.add (local.get $row) (i32.shl (local.get $c) (i32.const 2)))))
              (i32.store (local.get $e) (i32.mul (local.get $c) (local.get $stride)))
              (f32.store offset=4 (local.get $e) (local.get $x))
              (local.set $e (i32.add (local.get $e) (i32.shl (f32.ne (local.get $x) (f32.const 0)) (i32.const 3))))
              (local.set $c (i32.add (local.get $c) (i32.const 1)))
              (br_if $within (i32.lt_u (local.get $c) (local.get $k)))))
          (else (local.set $c (i32.add (local.get $c) (i32.const 4)))))
        (br $blocks)))
      (block $tail_done (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $c) (local.get $cols)))
        (local.set $x (f32.load (i32.add (local.get $row) (i32.shl (local.get $c) (i32.const 2)))))
        (i32.store (local.get $e) (i32.mul (local.get $c) (local.get $stride)))
        (f32.store offset=4 (local.get $e) (local.get $x))
        (local.set $e (i32.add (local.get $e) (i32.shl (f32.ne (local.get $x) (f32.const 0)) (i32.const 3))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $tail)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop)))
    (i32.store (i32.add (local.get $ptr) (i32.shl (local.get $rows) (i32.const 2))) (i32.sub (local.get $e) (local.get $pairs))))`;

/** The entry loop of {@link SPMM} for `lanes` accumulators of 4 columns each (or 1 scalar column when 0). */
function spmmBlock(label: string, lanes: number): string {
  const accs = lanes === 0 ? ['$s'] : Array.from({ length: lanes }, (_, t) => `$acc${t}`);
  const zero = lanes === 0 ? '(f32.const 0)' : '(v128.const i32x4 0 0 0 0)';
  const update =
    lanes === 0
      ? `(local.set $s (f32.add (local.get $s) (f32.mul (f32.load offset=4 (local.get $e)) (f32.load (local.get $q)))))`
      : accs.map((acc, t) => `(local.set ${acc} (f32x4.add (local.get ${acc}) (f32x4.mul (local.get $v) (v128.load offset=${16 * t} (local.get $q)))))`).join('\n            ');
  const store =
    lanes === 0
      ? `(f32.store (local.get $o) (local.get $s))`
      : accs.map((acc, t) => `(v128.store offset=${16 * t} (local.get $o) (local.get ${acc}))`).join(' ');
  const width = lanes === 0 ? 4 : 16 * lanes;
  return `
    (block $${label}_done (loop $${label}
      (br_if $${label}_done (i32.gt_u (i32.add (local.get $jo) (i32.const ${width})) (local.get $rowBytes)))
      (local.set $i (i32.const 0))
      (block $${label}_rows_done (loop $${label}_rows
        (br_if $${label}_rows_done (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $e (i32.add (local.get $pairs) (i32.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $end (i32.add (local.get $pairs) (i32.load offset=4 (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 2))))))
        ${accs.map((acc) => `(local.set ${acc} ${zero})`).join(' ')}
        (block $${label}_entries_done (loop $${label}_entries
          (br_if $${label}_entries_done (i32.ge_u (local.get $e) (local.get $end)))
          (local.set $q (i32.add (local.get $bj) (i32.load (local.get $e))))
          ${lanes === 0 ? '' : '(local.set $v (f32x4.splat (f32.load offset=4 (local.get $e))))'}
          ${update}
          (local.set $e (i32.add (local.get $e) (i32.const 8)))
          (br $${label}_entries)))
        (local.set $o (i32.add (local.get $cj) (i32.mul (local.get $i) (local.get $rowBytes))))
        ${store}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $${label}_rows)))
      (local.set $jo (i32.add (local.get $jo) (i32.const ${width})))
      (local.set $bj (i32.add (local.get $bj) (i32.const ${width})))
      (local.set $cj (i32.add (local.get $cj) (i32.const ${width})))
      (br $${label})))`;
}

/**
 * `spmm(ptr, pairs, m, b, n, c)`: `C = S · B`, with `S` (`m × k`) in the compressed rows of
 * {@link COMPRESS_ROWS} (built with `stride = 4n`), `B` the row-major `k × n` float32 matrix at
 * `b` and `C` (`m × n`) written at `c`. The columns are taken 16 at a time (4 accumulators of
 * 4 lanes), each block over every row of `S`, so that the block of `B` in use (`k × 16`, 50 KB
 * for `k = 784`) stays in the core's nearest caches; then blocks of 4 columns, then single
 * columns. Blocks of 16 measured 15–25% faster than blocks of 32 and twice as fast as blocks of
 * 8 (`npm run bench:kernels`). The work is `2 × nnz(S) × n` flops against `2 × m × k × n` for
 * the dense product.
 */
const SPMM = `
  (func (export "spmm") (param $ptr i32) (param $pairs i32) (param $m i32) (param $b i32) (param $n i32) (param $c i32)
    (local $rowBytes i32) (local $jo i32) (local $bj i32) (local $cj i32) (local $i i32) (local $e i32) (local $end i32)
    (local $q i32) (local $o i32) (local $v v128) (local $s f32)
    ${Array.from({ length: 4 }, (_, t) => `(local $acc${t} v128)`).join(' ')}
    (local.set $rowBytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $bj (local.get $b))
    (local.set $cj (local.get $c))
    ${spmmBlock('wide', 4)}
    ${spmmBlock('narrow', 1)}
    ${spmmBlock('single', 0)})`;

/** One loop of {@link COL_SUM}: 4 columns per step (`f32x4`) or 1 (`f32`), each summed down the rows. */
function colSumLoop(label: string, type: 'f32x4' | 'f32'): string {
  const [width, zero, load, store] =
    type === 'f32x4' ? [16, '(v128.const i32x4 0 0 0 0)', 'v128.load', 'v128.store'] : [4, '(f32.const 0)', 'f32.load', 'f32.store'];
  return `
    (block $${label}_done (loop $${label}
      (br_if $${label}_done (i32.gt_u (i32.add (local.get $j) (i32.const ${width})) (local.get $rowBytes)))
      (local.set $${type} ${zero})
      (local.set $p (i32.add (local.get $a) (local.get $j)))
      (local.set $r (i32.const 0))
      (block $${label}_rows_done (loop $${label}_rows
        (br_if $${label}_rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $${type} (${type}.add (local.get $${type}) (${load} (local.get $p))))
        (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $${label}_rows)))
      (${store} (i32.add (local.get $out) (local.get $j)) (local.get $${type}))
      (local.set $j (i32.add (local.get $j) (i32.const ${width})))
      (br $${label})))`;
}

/**
 * `col_sum(a, rows, cols, out)`: `out[c] = Σ_r a[r][c]` for the row-major `rows × cols` float32
 * matrix at `a` (the bias gradient of a dense layer, summed over the batch), adding the rows in
 * order, 4 columns at a time, then the last `cols mod 4` one at a time.
 */
const COL_SUM = `
  (func (export "col_sum") (param $a i32) (param $rows i32) (param $cols i32) (param $out i32)
    (local $r i32) (local $j i32) (local $rowBytes i32) (local $p i32) (local $f32x4 v128) (local $f32 f32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    ${colSumLoop('wide', 'f32x4')}
    ${colSumLoop('single', 'f32')})`;

/** The whole module's WebAssembly text (exported for inspection and tests). */
export function fusedModuleText(): string {
  const funcs = Object.entries(kernels()).map(([name, statements]) => kernelText(name, statements));
  return `(module\n  (import "env" "memory" (memory 1))${funcs.join('\n')}${ALL_FINITE}${TRANSPOSE}${COUNT_NONZERO}${COMPRESS_ROWS}${SPMM}${COL_SUM}\n)`;
}

/**
 * The transpose of a matrix: `[rows, cols]` → `[cols, rows]`. On wasm with the kernels loaded,
 * 4 × 4 blocks transposed in SIMD registers (tfjs's wasm Transpose moves one value at a time and
 * takes up to 4 ns a value for power-of-two shapes); elsewhere, and for dtypes other than
 * float32, `tf.transpose`.
 */
export function transpose2d(t: tf.Tensor2D): tf.Tensor2D {
  matrix(t, 'transpose2d');
  const src = heapOffset(t);
  if (src === undefined || !loaded) return tf.transpose(t);
  const [rows, cols] = t.shape;
  const [out, dst] = heapOutput([cols, rows]);
  (loaded.fns.transpose as (src: number, dst: number, rows: number, cols: number) => void)(src, dst, rows, cols);
  return out as tf.Tensor2D;
}

/**
 * Largest fraction of non-zero values in the left operand at which {@link sparseMatMul}
 * multiplies sparsely. Measured with `npm run bench:kernels` against tfjs's dense `BatchMatMul`
 * (XNNPACK) for the products of a 784-512-256 MLP at batch 128: the sparse kernel is about 2.5x
 * as fast at density 0.2, 1.1–1.7x at 0.45, 0.9–1.1x at 0.55 and 0.75x at 0.7.
 */
export const SPARSE_MAX_DENSITY = 0.5;

/**
 * Inner dimensions up to which {@link sparseMatMul} multiplies whatever the density: for a
 * product like `[128, 10] × [10, 256]` (the input gradient of a 10-class output layer), tfjs's
 * `BatchMatMul` spends most of its time setting up XNNPACK for a fresh right-hand side (about
 * 0.25 ms inside training, against 0.05 ms for the sparse kernel run dense).
 */
export const SMALL_INNER = 16;

/**
 * `a · b` for 2-D float32 tensors (`[m, k] × [k, n]` → `[m, n]`) computed from the non-zero
 * values of `a` only, when the wasm kernels are loaded and at most `maxDensity` of `a`'s values
 * are non-zero; otherwise returns `undefined` and the caller multiplies densely. Inputs like
 * MNIST images (about 19% non-zero), ReLU activations and the gradients behind a ReLU are
 * sparse. `b` may be given as a function, called only when the sparse product runs (e.g. a
 * transpose that the dense path would not need); the caller owns what it returns.
 *
 * Cost: one SIMD pass over `a` to count its non-zero values, one to compress them (compressed
 * sparse rows, CSR: Saad, *Iterative Methods for Sparse Linear Systems*, 2003, §3.4), then
 * `2 × nnz(a) × n` flops: each output row is the sum of the rows of `b` picked by the non-zero
 * values of the matching row of `a`, scaled by them. Each output is a sum over `k` in increasing order,
 * as in the dense product, but rounding may differ in the last bit where the dense kernel
 * blocks its sums differently.
 */
export function sparseMatMul(a: tf.Tensor2D, b: tf.Tensor2D | (() => tf.Tensor2D), maxDensity = SPARSE_MAX_DENSITY): tf.Tensor2D | undefined {
  matrix(a, 'sparseMatMul');
  const pa = heapOffset(a);
  if (pa === undefined || !loaded) return undefined;
  const fns = loaded.fns as Record<string, (...args: number[]) => number>;
  const nnz = fns.count_nonzero!(pa, a.size);
  if (nnz > maxDensity * a.size && a.shape[1] > SMALL_INNER) return undefined;
  const right = typeof b === 'function' ? b() : b;
  const pb = heapOffset(right);
  const [m, k] = a.shape;
  const [kb, n] = right.shape;
  if (pb === undefined || k !== kb || right.shape.length !== 2) {
    if (right !== b) right.dispose(); // its shape stays readable
    if (k !== kb || right.shape.length !== 2) throw new InvalidArgumentError(`sparseMatMul: [${a.shape}] × [${right.shape}] is not a product of matrices with equal inner dimensions.`);
    return undefined;
  }
  // Scratch: m + 1 row offsets, then nnz + 1 (index, value) pairs: compress_rows writes one past the last.
  const [scratch, ptr] = heapOutput([m + 1 + 2 * (nnz + 1)]);
  const pairs = ptr + 4 * (m + 1);
  fns.compress_rows!(pa, m, k, 4 * n, ptr, pairs);
  const [out, pc] = heapOutput([m, n]);
  fns.spmm!(ptr, pairs, m, pb, n, pc);
  scratch.dispose();
  if (right !== b) right.dispose();
  return out as tf.Tensor2D;
}

/**
 * The sum of a 2-D tensor's rows (`[rows, cols]` → `[cols]`), e.g. a bias gradient summed over
 * the batch: one SIMD pass on wasm with the kernels loaded (tfjs's wasm `Sum` over axis 0
 * transposes first), else `tf.sum(a, 0)`.
 */
export function columnSum(a: tf.Tensor2D): tf.Tensor1D {
  matrix(a, 'columnSum');
  const pa = heapOffset(a);
  if (pa === undefined || !loaded) return tf.sum(a, 0);
  const [rows, cols] = a.shape;
  const [out, po] = heapOutput([cols]);
  loaded.fns.col_sum!(pa, rows, cols, po);
  return out as tf.Tensor1D;
}

/**
 * Whether every value of `t` is finite (no NaN, no ±∞). On wasm with the kernels loaded, one
 * SIMD pass over the heap; elsewhere, and for dtypes other than float32, `tf.all(tf.isFinite(t))`.
 */
export function allFinite(t: tf.Tensor): boolean {
  const p = heapOffset(t);
  if (p !== undefined && loaded) return (loaded.fns.all_finite as (p: number, n: number) => number)(p, t.size) === 1;
  return tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] === 1);
}

/** Names of the fused kernels. */
export type FusedKernelName =
  | 'sgd'
  | 'sgd_momentum'
  | 'dc_constant'
  | 'dc_constant_momentum'
  | 'dc_adaptive'
  | 'dc_adaptive_momentum'
  | 'dc_adaptive_stale'
  | 'dc_adaptive_stale_momentum'
  | 'adam';

type KernelFn = (...args: number[]) => void;

/** The few WebAssembly APIs used here (the DOM lib, which declares them, is not in this project's lib). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Memory: abstract new (...args: never[]) => WasmMemory;
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
};

/** The parts of tfjs's wasm backend that the kernels use (not public API; checked on load). */
interface WasmBackendInternals {
  wasm: { asm: { memory: WasmMemory } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

let loaded: { backend: WasmBackendInternals; fns: Record<string, KernelFn> } | undefined;
let enabled = true;

function isWasmBackend(b: unknown): b is WasmBackendInternals {
  const x = b as Partial<WasmBackendInternals> | undefined;
  return !!x && x.wasm?.asm?.memory instanceof WebAssembly.Memory && typeof x.makeOutput === 'function' && !!x.dataIdMap;
}

/**
 * Compiles the kernels against the active backend's heap when that backend is wasm; a no-op
 * otherwise or when already loaded. Called by `initBackend`; call it yourself after selecting
 * the wasm backend with `tf.setBackend`. Never throws: when compilation fails (no WebAssembly
 * SIMD, say), the optimizers keep using tfjs ops. Returns whether the kernels are available.
 */
export async function loadFusedKernels(): Promise<boolean> {
  if (tf.getBackend() !== 'wasm') return false;
  const backend: unknown = tf.backend();
  if (loaded?.backend === backend) return true;
  if (!isWasmBackend(backend)) return false;
  try {
    const { default: wabtInit } = await import('wabt');
    const wabt = await wabtInit();
    const parsed = wabt.parseWat('akkordeon-fused.wat', fusedModuleText(), { simd: true });
    let binary: Uint8Array;
    try {
      binary = parsed.toBinary({}).buffer;
    } finally {
      parsed.destroy();
    }
    const instance = await WebAssembly.instantiate(await WebAssembly.compile(binary), { env: { memory: backend.wasm.asm.memory } });
    loaded = { backend, fns: instance.exports as Record<string, KernelFn> };
    return true;
  } catch {
    return false;
  }
}

/**
 * Turns the fused kernels on (default) or off for this thread, e.g. to compare against the
 * tfjs path. Off, every update uses tfjs ops.
 */
export function useFusedKernels(on: boolean): void {
  enabled = on;
}

/** Whether updates on the active backend run fused kernels now (loaded for it, and enabled). */
export function fusedKernelsActive(): boolean {
  return enabled && !!loaded && (tf.backend() as unknown) === loaded.backend;
}

/**
 * Checks that `t` is a matrix: the kernels read `rows × cols` values from its buffer, which only
 * a rank-2 tensor's shape bounds by its own size.
 * @throws InvalidArgumentError for any other rank.
 */
function matrix(t: tf.Tensor, kernel: string): void {
  if (t.shape.length !== 2) throw new InvalidArgumentError(`${kernel} takes a matrix ([rows, cols]); got shape [${t.shape}].`);
}

/** Byte offset of `t`'s values in the wasm heap, when the kernels can run on it (active, float32). */
function heapOffset(t: tf.Tensor): number | undefined {
  if (!loaded || !fusedKernelsActive() || t.dtype !== 'float32') return undefined;
  return loaded.backend.dataIdMap.get(t.dataId)?.memoryOffset;
}

/** A new float32 tensor of `shape` on the heap, values not initialised, and its byte offset. */
function heapOutput(shape: number[]): [tf.Tensor, number] {
  const backend = (loaded as NonNullable<typeof loaded>).backend;
  const out = tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, 'float32'));
  return [out, backend.dataIdMap.get(out.dataId)?.memoryOffset ?? 0];
}

/** Hyper-parameters of a kernel call (see {@link kernels} for the meaning of `a`, `b`, `c`). */
export interface FusedArgs {
  a?: number;
  b?: number;
  c?: number;
  d?: number;
  eps?: number;
  mu?: number;
  lr: number;
}

/**
 * Runs a fused kernel when it is loaded for the active backend, enabled, and every given tensor
 * is float32 on the wasm heap; returns undefined otherwise (the caller then uses tfjs ops).
 * Returns the new parameter and, when the kernel writes them, the new `ms` (mean square, or
 * Adam's first moment) and `v` (momentum, or Adam's second moment), tracked by the enclosing
 * `tf.tidy` like any op's output.
 */
export function runFused(
  kernel: FusedKernelName,
  inputs: { w: tf.Tensor; g: tf.Tensor; wf?: tf.Tensor; ms?: tf.Tensor; v?: tf.Tensor },
  args: FusedArgs,
): { w: tf.Tensor; ms?: tf.Tensor; v?: tf.Tensor } | undefined {
  if (!loaded) return undefined;
  const pointers: number[] = [];
  for (const key of ['w', 'g', 'wf', 'ms', 'v'] as const) {
    const t = inputs[key];
    const p = !t ? 0 : t.size === inputs.w.size ? heapOffset(t) : undefined;
    if (p === undefined) return undefined;
    pointers.push(p);
  }
  const shape = inputs.w.shape;
  const [w, wOut] = heapOutput(shape);
  const [ms, msOut] = inputs.ms ? heapOutput(shape) : [undefined, 0];
  const [v, vOut] = inputs.v ? heapOutput(shape) : [undefined, 0];
  (loaded.fns[kernel] as KernelFn)(
    ...pointers,
    wOut,
    msOut,
    vOut,
    inputs.w.size,
    args.a ?? 0,
    args.b ?? 0,
    args.c ?? 0,
    args.d ?? 0,
    args.eps ?? 0,
    args.mu ?? 0,
    args.lr,
  );
  return { w, ms, v };
}
