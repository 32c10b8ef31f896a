/**
 * Liveness of the peers on a bus (NATS): who was heard recently, who left, who went silent.
 * A peer is up from its first heartbeat until it says goodbye or misses heartbeats for
 * `timeoutMs`; a peer that went down stays marked down until it is heard again.
 */

interface Peer {
  name?: string;
  lastSeen: number;
}

/** Callbacks of a {@link PeerTable}. */
export interface PeerCallbacks {
  up(node: string, name: string | undefined): void;
  /** `reason` is absent when the table itself is cleared (closing). */
  down(node: string, reason: 'left' | 'timeout' | undefined, name: string | undefined): void;
}

/** Heartbeat bookkeeping; all times in ms from `now()`. */
export class PeerTable {
  private readonly peers = new Map<string, Peer>();
  /** Nodes that left or missed their heartbeats; bounded. */
  private readonly down = new Set<string>();
  private lastCheck: number;

  constructor(
    private readonly callbacks: PeerCallbacks,
    private readonly now: () => number = Date.now,
  ) {
    this.lastCheck = now();
  }

  /** Nodes heard from recently, with their names. */
  get nodes(): Map<string, string | undefined> {
    return new Map([...this.peers].map(([node, peer]) => [node, peer.name]));
  }

  /** True for a node that left or went silent and has not been heard since. */
  isDown(node: string): boolean {
    return this.down.has(node);
  }

  /** Records a heartbeat (or a goodbye) from `node`. */
  heard(node: string, name: string | undefined, bye: boolean): void {
    if (bye) {
      if (this.peers.has(node)) this.drop(node, 'left');
      return;
    }
    const peer = this.peers.get(node);
    if (peer) {
      peer.lastSeen = this.now();
      return;
    }
    this.down.delete(node);
    this.peers.set(node, { name, lastSeen: this.now() });
    this.callbacks.up(node, name);
  }

  /**
   * Drops peers silent for longer than `timeoutMs`. When this process itself was stalled (the
   * previous check is long past), silence proves nothing and the peers get the benefit of the doubt.
   */
  check(timeoutMs: number): void {
    const now = this.now();
    const stalled = now - this.lastCheck > timeoutMs / 2;
    this.lastCheck = now;
    if (stalled) return this.peers.forEach((peer) => (peer.lastSeen = Math.max(peer.lastSeen, now - timeoutMs / 2)));
    for (const [node, peer] of this.peers) if (peer.lastSeen < now - timeoutMs) this.drop(node, 'timeout');
  }

  /** Treats every peer as just heard (after a reconnect: silence while away proves nothing). */
  refresh(): void {
    const now = this.now();
    this.peers.forEach((peer) => (peer.lastSeen = now));
  }

  /** Forgets every peer without marking it down (closing). */
  clear(): void {
    for (const node of [...this.peers.keys()]) this.drop(node);
  }

  private drop(node: string, reason?: 'left' | 'timeout'): void {
    const peer = this.peers.get(node);
    this.peers.delete(node);
    if (reason) {
      this.down.add(node);
      if (this.down.size > 10_000) this.down.delete(this.down.values().next().value as string);
    }
    this.callbacks.down(node, reason, peer?.name);
  }
}
