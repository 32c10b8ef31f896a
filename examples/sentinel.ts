/**
 * `npm run sentinel`: trains, validates or tests a network found by name over NATS (see
 * src/apps/sentinel-app.ts). Example: `npm run sentinel -- train --network mnist --epochs 2`.
 */
import { sentinelMain, runMain } from 'akkordeon/apps';

await runMain(async () => {
  await sentinelMain(process.argv);
});
