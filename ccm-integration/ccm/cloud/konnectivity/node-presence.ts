// How long each node has been without an agent, from the listings the directory makes.
// Listings are made on demand, so the gap between two says nothing about when an agent left:
// a node is missing since the first listing that lacked it (after one that had it), which
// never overstates the time. A node no listing ever had is missing since the first listing
// this process made: "gone since start", counted from when we could first look.
import type { AgentListing } from './agent-directory.js';

export class NodePresence {
  private firstListingAt: number | undefined;
  /** Nodes some listing had; the value is when the last one had it. */
  private readonly lastSeen = new Map<string, number>();
  /** Seen nodes that a later listing lacked: since when. */
  private readonly missingSince = new Map<string, number>();

  observe(listing: AgentListing): void {
    const at = listing.fetchedAt;
    this.firstListingAt ??= at;
    for (const name of listing.nodes.keys()) {
      this.lastSeen.set(name, at);
      this.missingSince.delete(name);
    }
    for (const name of this.lastSeen.keys()) {
      if (!listing.nodes.has(name) && !this.missingSince.has(name)) this.missingSince.set(name, at);
    }
  }

  /** Milliseconds the node has been without an agent as of `listing` (0 when it has one). */
  missingFor(name: string, listing: AgentListing, now = Date.now()): number {
    if (listing.nodes.has(name)) return 0;
    const since = this.missingSince.get(name) ?? this.firstListingAt ?? listing.fetchedAt;
    return Math.max(0, now - since);
  }

  /** When a listing last had the node; undefined when none has. */
  lastSeenAt(name: string): number | undefined {
    return this.lastSeen.get(name);
  }
}
