import { createHash } from 'node:crypto';
import type { RecordKey } from './ports';

/*
 * What an `offboard enqueue` approval approves: exactly the events of the file, by their record
 * keys (route, source and id, and content). The approval keeps one digest of them (the root of a
 * Merkle tree, so a wave of 50,000 stays a few dozen characters on the guardrail's record), and
 * each message carries the path from its own event to that root. The app computes the event's key
 * itself and checks the path: a path proves one event and nothing else, so an event the operator
 * did not send (another user, another source or id, other content) cannot ride the approval,
 * whatever wave id or path it carries.
 */

/** Hashes as unpadded base64url (43 characters). */
const hash = (...parts: string[]) =>
  createHash('sha256').update(parts.join('\u0000')).digest('base64url');

/** The leaf of one event (domain-separated from inner nodes, so a node is never taken for a leaf). */
export function approvalLeaf(key: RecordKey): string {
  return hash('wave-event', key.identityKey, key.contentDigest);
}

/** Inner nodes hash their two children in sorted order: a path needs no left/right marks. */
const node = (a: string, b: string) => (a < b ? hash('wave-node', a, b) : hash('wave-node', b, a));

export interface ApprovalTree {
  /** The digest the approval keeps. */
  root: string;
  /** Per event (in the order given), the path to carry on its message. */
  proofs: string[];
}

/** Separates the hashes of a path on the message (not a base64url character). */
const PROOF_SEPARATOR = '.';

/** The approval digest of a wave's events, and each event's path to it. */
export function approvalTree(keys: readonly RecordKey[]): ApprovalTree {
  if (keys.length === 0) return { root: '', proofs: [] };
  let level = keys.map(approvalLeaf);
  // For each event: its position on the current level, and its siblings so far.
  const position = keys.map((_, i) => i);
  const paths: string[][] = keys.map(() => []);
  while (level.length > 1) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as string;
      const right = level[i + 1];
      // An odd node out goes up unchanged (no sibling on this level).
      next.push(right === undefined ? left : node(left, right));
    }
    position.forEach((at, event) => {
      const sibling = level[at % 2 === 0 ? at + 1 : at - 1];
      if (sibling !== undefined) paths[event]?.push(sibling);
      position[event] = Math.floor(at / 2);
    });
    level = next;
  }
  return { root: level[0] as string, proofs: paths.map((p) => p.join(PROOF_SEPARATOR)) };
}

/** The root an event's path leads to (undefined for a path that is not one). */
export function rootOf(key: RecordKey, proof: string): string | undefined {
  const siblings = proof === '' ? [] : proof.split(PROOF_SEPARATOR);
  // Depth 40 covers 2^40 events; anything longer or malformed is not a path this app made.
  if (siblings.length > 40 || !siblings.every((s) => /^[A-Za-z0-9_-]{43}$/.test(s)))
    return undefined;
  return siblings.reduce(node, approvalLeaf(key));
}
