/**
 * `npm run downpour`: the MNIST MLP trained by Downpour SGD (src/apps/downpour.ts);
 * `npm run downpour -- --replicas 4 --help`.
 */
import { downpourMain, runMain } from 'akkordeon/apps';

await runMain(() => downpourMain(process.argv));
