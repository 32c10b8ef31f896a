/**
 * Persistence of a network's gates: checkpoints (atomic save and load of every gate's weights and
 * optimizer state, with architecture checks, and periodic saving) and export as a tfjs
 * LayersModel. It works on anything {@link Checkpointable}: a `Network` or hosted gates.
 */
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  findCheckpoint,
  loadCheckpoint,
  periodicCheckpoints,
  saveCheckpoint,
  writeDirectoryAtomically,
  type Checkpointable,
  type CheckpointSaveOutcome,
  type PeriodicCheckpoints,
  type CheckpointManifest,
  type GateEntry,
  type TensorEntry,
} from './checkpoint.js';
export { exportModel, loadExportedModel, type ExportedModelJSON } from './export.js';
