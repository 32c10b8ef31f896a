/**
 * `npm run nats-config`: writes a nats-server configuration with per-role users for one network
 * (see src/apps/nats-config.ts).
 */
import { natsConfigMain, runMain } from 'akkordeon/apps';

await runMain(() => natsConfigMain(process.argv).then(() => undefined));
