/**
 * WebAssembly kernels for the wasm backend: fused optimizer steps, the finiteness check, dense
 * transposes, column sums and the sparse matmul of backward passes. They serve the gates, the
 * backend (which loads them) and the optimizers, so they sit below all three; each kernel has a
 * tfjs fallback where the module is not loaded.
 */
export {
  allFinite,
  columnSum,
  fusedKernelsActive,
  fusedModuleText,
  loadFusedKernels,
  runFused,
  SMALL_INNER,
  SPARSE_MAX_DENSITY,
  sparseMatMul,
  transpose2d,
  useFusedKernels,
  type FusedArgs,
  type FusedKernelName,
} from './fused.js';
