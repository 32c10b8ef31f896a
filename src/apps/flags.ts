/**
 * Parsers of command-line flag values, shared by every akkordeon program. Each throws
 * commander's InvalidArgumentError with the flag's name and the value it got.
 */
import { InvalidArgumentError as CommanderArgumentError } from 'commander';
import { MNIST_MODELS, type MnistModelName } from '../models/index.js';

/** An integer ≥ 1 (≥ 0 with `zeroOk`). */
export function positiveInt(flag: string, zeroOk = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1)) {
      throw new CommanderArgumentError(`${flag} must be a ${zeroOk ? 'non-negative' : 'positive'} integer, got '${value}'.`);
    }
    return n;
  };
}

/** A finite number in `[0, max]`. */
export function nonNegative(flag: string, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || n > max) {
      const range = max === Infinity ? 'a non-negative number' : `a number in [0, ${max}]`;
      throw new CommanderArgumentError(`${flag} must be ${range}, got '${value}'.`);
    }
    return n;
  };
}

/** One of the MNIST model names (`mlp`, `cnn`). */
export function mnistModelName(flag: string) {
  return (value: string): MnistModelName => {
    if (!(MNIST_MODELS as readonly string[]).includes(value)) throw new CommanderArgumentError(`${flag} must be one of ${MNIST_MODELS.join(', ')}, got '${value}'.`);
    return value as MnistModelName;
  };
}
