/**
 * Versioned parameters for weight stashing (PipeDream, Narayanan et al., SOSP 2019, Sec. 3.3):
 * every optimizer step makes a new version; a version stays alive while any in-flight batch
 * whose forward pass used it still waits for its backward pass.
 */
import type * as tf from '@tensorflow/tfjs';

/** One immutable set of trainable parameter values. */
export class ParamVersion {
  /** In-flight batches that used this version in their forward pass. */
  refs = 0;

  constructor(
    /** Monotonic version number; staleness is `current.id − version.id`. */
    readonly id: number,
    readonly tensors: tf.Tensor[],
  ) {}
}

/** The current parameter version plus every older one that an in-flight batch still holds. */
export class ParamStore {
  private currentVersion: ParamVersion;
  private readonly stale = new Set<ParamVersion>();

  constructor(initial: tf.Tensor[]) {
    this.currentVersion = new ParamVersion(0, initial);
  }

  /** The newest version. */
  get current(): ParamVersion {
    return this.currentVersion;
  }

  /** Number of versions kept alive only for stashed batches. */
  get staleCount(): number {
    return this.stale.size;
  }

  /** Marks the current version as used by one more in-flight batch and returns it. */
  acquire(): ParamVersion {
    this.currentVersion.refs++;
    return this.currentVersion;
  }

  /** Ends one batch's hold on a version; frees a stale version that nobody holds any more. */
  release(version: ParamVersion): void {
    version.refs--;
    if (version.refs <= 0 && version !== this.currentVersion) {
      this.stale.delete(version);
      version.tensors.forEach((t) => t.dispose());
    }
  }

  /** Installs new parameter values (the store takes ownership) and retires the old version. */
  replace(tensors: tf.Tensor[]): void {
    const old = this.currentVersion;
    this.currentVersion = new ParamVersion(old.id + 1, tensors);
    if (old.refs > 0) this.stale.add(old);
    else old.tensors.forEach((t) => t.dispose());
  }

  /** Frees every version. */
  dispose(): void {
    this.stale.forEach((v) => v.tensors.forEach((t) => t.dispose()));
    this.stale.clear();
    this.currentVersion.tensors.forEach((t) => t.dispose());
  }
}
