/**
 * Terminal reporting for sentinels: one line per epoch (see `formatEpoch`) and, on a TTY, a
 * progress bar per running sentinel.
 */
import cliProgress from 'cli-progress';
import { formatEpoch, type Sentinel } from '../sentinel/index.js';

/** Options of a {@link Reporter}. */
export interface ReporterOptions {
  /**
   * Allow progress bars (default true). They are drawn only where they can be: when the bars'
   * stream (stderr) is a terminal and not under CI, so redirected output stays plain lines.
   */
  progress?: boolean;
  /** Where lines go; default `console.log`. */
  log?: (line: string) => void;
}

/** Prints epoch lines of any number of sentinels, with progress bars on a terminal. */
export class Reporter {
  private readonly bars?: cliProgress.MultiBar;
  private readonly log: (line: string) => void;

  constructor(options: ReporterOptions = {}) {
    const progress = (options.progress ?? true) && Boolean(process.stderr.isTTY) && !process.env.CI;
    this.log = options.log ?? ((line) => console.log(line));
    if (progress) {
      this.bars = new cliProgress.MultiBar(
        { format: '{name} [{bar}] {percentage}% | {value}/{total} samples | loss {loss}', hideCursor: true, clearOnComplete: true, stopOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  /** Prints a line without tearing the progress bars. */
  line(text: string): void {
    if (this.bars) this.bars.log(`${text}\n`);
    else this.log(text);
  }

  /** Follows a sentinel until it is done. */
  watch(sentinel: Sentinel): void {
    let bar: cliProgress.SingleBar | undefined;
    sentinel.events.on('batch', (info) => {
      if (!this.bars) return;
      bar ??= this.bars.create(info.total, 0, { name: sentinel.name.padEnd(8), loss: '-' });
      bar.update(info.done, { loss: info.loss.toFixed(4) });
    });
    sentinel.events.on('epoch', (stats) => {
      if (bar) {
        this.bars?.remove(bar);
        bar = undefined;
      }
      this.line(formatEpoch(stats));
    });
    sentinel.events.on('batchError', (error, batch, lost) => this.line(`${sentinel.name}: batch ${batch} ${lost ? 'lost' : 'failed'}: ${error.code}: ${error.message}`));
    sentinel.events.on('done', () => {
      if (bar) this.bars?.remove(bar);
    });
  }

  /** Removes the progress bars. */
  stop(): void {
    this.bars?.stop();
  }
}
