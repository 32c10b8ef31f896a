/**
 * Export of a trained network as one standard tfjs `LayersModel` (`model.json` + `weights.bin`),
 * which any tfjs program can load and run without akkordeon: all gates' layers in order, with
 * their current weights (including non-trainable ones such as BatchNormalization moving stats).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataFormatError, InvalidArgumentError } from '../errors.js';
import { createLayer, disposeStates } from '../gate/index.js';
import type { GateState } from '../protocol/index.js';
import { writeDirectoryAtomically } from './checkpoint.js';
import type { Network } from '../network/index.js';

/** The `model.json` of a tfjs layers model, as `tf.loadLayersModel` reads it. */
export interface ExportedModelJSON {
  modelTopology: object;
  format: 'layers-model';
  generatedBy?: string;
  convertedBy: null;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

const shortName = (v: tf.LayerVariable) => v.originalName.split('/').pop() ?? v.originalName;

/** Builds one `tf.Sequential` from all gates' layer configs and gives it the gates' weights. */
function buildModel(states: GateState[]): tf.Sequential {
  const model = tf.sequential();
  const names = new Set<string>();
  try {
    states.forEach((state, g) => {
      const weights = new Map(state.weights.map((w) => [w.name, w.tensor]));
      state.layers.forEach(({ className, config }, i) => {
        const layerConfig: Record<string, unknown> = { ...config };
        delete layerConfig.inputShape;
        delete layerConfig.batchInputShape;
        if (g === 0 && i === 0) layerConfig.batchInputShape = [null, ...state.inputShape];
        let name = String(layerConfig.name ?? `${className.toLowerCase()}_${g}_${i}`);
        if (names.has(name)) name = `${name}_${g}_${i}`;
        names.add(name);
        layerConfig.name = name;
        const layer = createLayer({ className, config: layerConfig });
        model.add(layer); // builds the layer for the previous output shape
        const values = layer.weights.map((v) => {
          const key = `layer${i}/${shortName(v)}`;
          const value = weights.get(key);
          if (!value) throw new InvalidArgumentError(`${state.gate}: no weight '${key}' for layer ${name} (${className}); the gate state is incomplete.`);
          weights.delete(key);
          return value;
        });
        layer.setWeights(values);
      });
      if (weights.size > 0) {
        throw new InvalidArgumentError(`${state.gate}: weights ${[...weights.keys()].join(', ')} match no layer of the exported model.`);
      }
    });
  } catch (error) {
    if (model.layers.length > 0) model.dispose(); // an empty Sequential cannot be disposed
    throw error;
  }
  return model;
}

/**
 * Exports `network` to directory `dir` as a standard tfjs layers model: `model.json` (topology
 * and weights manifest) and `weights.bin`. Written atomically, like checkpoints.
 * Load it with {@link loadExportedModel}, or with tfjs-node via
 * `tf.loadLayersModel('file://<dir>/model.json')`.
 * @throws InvalidArgumentError when a layer class is not registered with tfjs or `dir` holds
 *   other files; the file system's error when writing fails.
 */
export async function exportModel(network: Network, dir: string): Promise<void> {
  const states = await network.getState();
  let artifacts: tf.io.ModelArtifacts | undefined;
  try {
    const model = buildModel(states);
    try {
      await model.save(
        tf.io.withSaveHandler(async (a) => {
          artifacts = a;
          return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
        }),
      );
    } finally {
      model.dispose();
    }
  } finally {
    disposeStates(states);
  }
  const saved = artifacts as tf.io.ModelArtifacts;
  const modelJSON: ExportedModelJSON = {
    modelTopology: saved.modelTopology as object,
    format: 'layers-model',
    generatedBy: saved.generatedBy,
    convertedBy: null,
    weightsManifest: [{ paths: ['weights.bin'], weights: saved.weightSpecs ?? [] }],
  };
  const weightData = tf.io.CompositeArrayBuffer.join(saved.weightData);
  await writeDirectoryAtomically(dir, {
    'model.json': JSON.stringify(modelJSON),
    'weights.bin': new Uint8Array(weightData),
  });
}

/** Bytes per stored value of a weight, after quantization if any. */
function bytesPerValue(spec: tf.io.WeightsManifestEntry): number {
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  return dtype === 'bool' || dtype === 'uint8' ? 1 : dtype === 'uint16' || dtype === 'float16' ? 2 : 4;
}

/**
 * Loads a model written by {@link exportModel} (or any tfjs `model.json` with weight files beside
 * it) from directory `dir`, without tfjs-node. The caller owns the model and disposes it.
 * With tfjs-node, `tf.loadLayersModel('file://<dir>/model.json')` loads the same files.
 * @throws DataFormatError when `model.json` or a weight file is missing, is not valid JSON,
 *   names a path outside `dir`, or has fewer bytes than its weights need.
 */
export async function loadExportedModel(dir: string): Promise<tf.LayersModel> {
  const file = path.join(dir, 'model.json');
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) throw new DataFormatError(`${file} is missing. Point loadExportedModel at a directory written by exportModel.`);
  let json: Partial<ExportedModelJSON>;
  try {
    json = JSON.parse(text) as Partial<ExportedModelJSON>;
  } catch (error) {
    throw new DataFormatError(`${file} is not valid JSON (${(error as Error).message}); export the model again.`, { cause: error });
  }
  if (typeof json.modelTopology !== 'object' || json.modelTopology === null || !Array.isArray(json.weightsManifest)) {
    throw new DataFormatError(`${file} lacks modelTopology or weightsManifest; it is not a tfjs layers model. Export the model again.`);
  }
  const buffers: Uint8Array[] = [];
  for (const p of json.weightsManifest.flatMap((group) => group.paths)) {
    const weightFile = path.resolve(dir, p);
    if (path.relative(path.resolve(dir), weightFile).startsWith('..')) {
      throw new DataFormatError(`${file} names weight file '${p}' outside ${dir}; refusing to read it.`);
    }
    const data = await fs.readFile(weightFile).catch(() => undefined);
    if (data === undefined) throw new DataFormatError(`Weight file ${weightFile} named in ${file} is missing; copy it beside model.json.`);
    buffers.push(data);
  }
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const needed = weightSpecs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * bytesPerValue(s), 0);
  const weightData = new Uint8Array(Buffer.concat(buffers)).buffer;
  if (weightData.byteLength < needed) {
    throw new DataFormatError(`The weight files of ${file} hold ${weightData.byteLength} bytes but its weights need ${needed} (truncated?); export the model again.`);
  }
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData, format: json.format, generatedBy: json.generatedBy }),
  );
}
