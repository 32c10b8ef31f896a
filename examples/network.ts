/**
 * `npm run network`: hosts the gates of a named network over NATS (see src/apps/network-app.ts).
 * Example: `npm run network -- --name mnist --model mlp --nats nats://127.0.0.1:4222`.
 */
import { networkMain, runMain } from 'akkordeon/apps';

await runMain(() => networkMain(process.argv));
