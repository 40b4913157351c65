import { randomUUID } from 'node:crypto';
import { perform } from './actionRun';
import { countDuplicate, errorOf, invalidMessageRecord, updateRecord } from './auditRecords';
import { MessageProperties } from './messaging';
import { actionsOf, decideClaim, freshAttempt, isForLater, type ClaimVerdict } from './claim';
import { cancelDeparture, scheduleDeparture } from './departures';
import { ErrorCodes, OffboardingError, toOffboardingError } from './errors';
import { eventKey, invalidMessageKey, outageCopyOriginal } from './eventIdentity';
import {
  EventKinds,
  parseEvent,
  salvageEventId,
  type EventKind,
  type OffboardingEvent,
} from './events';
import { fail, isProtected, refuse, supersede } from './flow';
import { guardrailOf, type EventDecision } from './guardrail';
import { generatePassword } from './password';
import { admitIntent, checkIntent, noteSeen } from './personTimeline';
import type { AuditRecord, DirectoryUser } from './ports';
import { reinstate } from './reinstate';
import { Routes } from './routes';
import type {
  Delivery,
  FlowContext,
  FlowResult,
  OffboardingDeps,
  ProcessResult,
  Resolved,
  Run,
} from './run';
import { backOff, copyOf, delivered, finish, type SettleContext } from './settle';
import { intentOfEvent } from './timeline';
import { describeUserRef } from './userRef';
import { unpaced } from '../pacing/pacer';

export { RUN_BUDGET_MS } from './actionRun';
export { CLAIM_LEASE_MS } from './claim';
export type { Delivery, Disposition, OffboardingDeps, ProcessResult } from './run';

/*
 * The use case, one delivery at a time: parse, claim the event's record, resolve the person and ask
 * their timeline whether the event may still write, run the flow of its kind, settle and write the
 * record once. Each step lives in its own module; this file only puts them in order.
 */
export class OffboardingService {
  private readonly ctx: FlowContext;
  private readonly settle: SettleContext;

  constructor(private readonly deps: OffboardingDeps) {
    const now = deps.now ?? (() => new Date());
    this.settle = { deps, now, random: deps.random ?? Math.random };
    this.ctx = {
      deps,
      now,
      pacer: deps.pacer ?? unpaced,
      makePassword: deps.generatePassword ?? generatePassword,
      resolve: (run) => this.resolve(run),
      copyOf,
    };
  }

  /**
   * Runs one delivery to its audit record. Throws only when the audit store itself fails
   * (AuditUnavailable, retryable): the delivery must then be retried.
   */
  async process(delivery: Delivery): Promise<ProcessResult> {
    const startedAt = this.ctx.now();
    const accepts: readonly EventKind[] =
      delivery.route === 'command' ? EventKinds : Routes[delivery.route].accepts;
    let event: OffboardingEvent;
    try {
      event = parseEvent(delivery.body, accepts);
    } catch (error) {
      return this.recordInvalid(delivery, toOffboardingError(error), startedAt);
    }

    const request = {
      event,
      key: eventKey(event, actionsOf(event)),
      actions: actionsOf(event),
      delivery,
      runId: delivery.runId ?? randomUUID(),
      startedAt,
      dryRun: this.deps.policy.dryRun,
      decision: 'unknown' as EventDecision | 'unknown' | undefined,
    };
    let prior: AuditRecord | undefined;
    const claimIt = () =>
      updateRecord<ClaimVerdict>(this.deps.audit, request.key, (current) => {
        prior = current;
        return decideClaim(current, request);
      });
    let claim = await claimIt();
    if (claim.verdict === 'held') {
      // Held for an operator: only held events pay this read (the guardrail's own table).
      request.decision = await this.deps.guardrail?.decisionFor(
        guardrailOf(event.kind),
        request.key,
      );
      claim = await claimIt();
    }
    const claimed = claim.record;
    if (claimed === undefined) throw new Error('A claim always leaves a record.');

    switch (claim.verdict) {
      case 'duplicate':
        // A final record is given to the sinks again: the first delivery may have failed to.
        return delivered(this.settle, delivery, {
          disposition: 'done',
          record: claimed,
          duplicate: true,
        });
      case 'permanent-again':
        // A redelivery of a message already judged permanently failed: no Graph call, straight on
        // towards the dead-letter queue. A replay (new message id) or a run by hand goes through.
        return delivered(this.settle, delivery, {
          disposition: 'reject',
          record: claimed,
          duplicate: false,
          error: errorOf(claimed),
        });
      case 'busy':
        return backOff(this.settle, claimed, delivery, startedAt);
      case 'discarded':
        return delivered(this.settle, delivery, {
          disposition: 'done',
          record: claimed,
          duplicate: false,
        });
      case 'held':
        throw new Error('A held event is decided once its operator decision was read.');
      case 'claimed':
        break;
    }

    const { decision } = request;
    const run: Run = {
      id: request.runId,
      event,
      key: request.key,
      delivery,
      startedAt,
      prior,
      record: freshAttempt(claimed, request, prior),
      ...(decision !== 'unknown' && decision?.kind === 'release' ? { release: decision } : {}),
    };
    if (prior === undefined) await this.noteReusedId(run);
    if (prior?.claimedBy === run.id) {
      // Handed over by a run that claimed the event and then could not record its end.
      run.record.attempts += 1;
      run.record.notes.push(
        'An earlier run ended without recording its result (the audit store was unavailable); anything it did is done again by this run.',
      );
    }

    let flow: FlowResult;
    if (event.kind === 'employee.leaving.cancelled') flow = await cancelDeparture(this.ctx, run);
    else if (event.kind === 'employee.leaving' && isForLater(event, run, this.ctx.now()))
      flow = await scheduleDeparture(this.ctx, event, run);
    else if (event.kind === 'employee.reinstated') flow = await reinstate(this.ctx, event, run);
    else flow = await perform(this.ctx, run);
    return finish(this.settle, run, flow);
  }

  /** Notes on a new record that its event id was used before for other content. */
  private async noteReusedId(run: Run): Promise<void> {
    const siblings = (await this.deps.audit.listIdentity(run.key.identityKey)).filter(
      (r) => r.contentDigest !== run.key.contentDigest,
    );
    if (siblings.length === 0) return;
    run.record.idReused = true;
    run.record.notes.push(
      `Event id "${run.event.id}" from source "${run.event.source}" was used before for different content (${siblings.length} other record(s)); this event was processed on its own and the earlier one was left as it was. Ask the sender to use a unique id per event (CloudEvents: source + id).`,
    );
  }

  /**
   * Resolves the user (an unknown or protected user fails now, not on the leave date), then puts
   * the event on the person's timeline: an event a later HR intent superseded ends here.
   */
  private async resolve(run: Run): Promise<Resolved | { flow: FlowResult }> {
    const { policy, directory } = this.deps;
    const { event, record } = run;
    if (isProtected(policy, event.user.value)) return { flow: refuse(record, event.user) };
    let user: DirectoryUser;
    try {
      const read = await directory.getUser(event.user);
      user = read.user;
      if (read.requestId) record.graphRequestIds.push(read.requestId);
    } catch (error) {
      return { flow: fail(record, toOffboardingError(error)) };
    }
    const earlierObject = run.prior?.objectId;
    if (earlierObject !== undefined && earlierObject.toLowerCase() !== user.id.toLowerCase()) {
      // Acting on whoever holds the UPN now could disable or reset the wrong person.
      record.objectId = earlierObject;
      return {
        flow: fail(
          record,
          new OffboardingError(
            ErrorCodes.UserChanged,
            `${describeUserRef(event.user)} now names object ${user.id}, but an earlier attempt of this event resolved it to ${earlierObject}: nothing was written. Check who is leaving and resend the event with the object id.`,
            { retryable: false },
          ),
        ),
      };
    }
    record.objectId = user.id;
    record.userPrincipalName = user.userPrincipalName;
    if (isProtected(policy, user.id, user.userPrincipalName))
      return { flow: refuse(record, event.user) };

    const seenAt = this.ctx.now().toISOString();
    // First seen: the record's first attempt, or when Service Bus enqueued it if earlier.
    const intent = intentOfEvent(
      event,
      run.key,
      [run.record.firstAttemptAt, run.delivery.enqueuedAt],
      run.startedAt,
    );
    if (intent === undefined) {
      await noteSeen(this.deps.timelines, user, seenAt);
      return { user };
    }
    const seen = { accountEnabled: user.accountEnabled, at: seenAt };
    // A cancellation writes its intent now (it writes nothing to Graph); an event that writes to
    // Graph is only checked here, by one read, and written at its commit point.
    const { verdict, timeline, version } =
      intent.kind === 'cancel'
        ? await admitIntent(this.deps.timelines, user.id, intent, seen)
        : await checkIntent(this.deps.timelines, user.id, intent, seen);
    run.admission = { intent, seen, version, pending: intent.kind !== 'cancel' };
    if (verdict.kind === 'superseded')
      return { flow: supersede(record, verdict.by, run.prior, timeline) };
    return { user, timeline };
  }

  /**
   * An invalid message gets a record of its own, keyed by its message id (an outage copy's by its
   * original's, when its id proves the link); the first record stands, a repeat counts a duplicate.
   */
  private async recordInvalid(
    delivery: Delivery,
    error: OffboardingError,
    startedAt: Date,
  ): Promise<ProcessResult> {
    // The message's own id; an outage copy's original only when its id proves the link (a
    // property alone could name another message). An existing record is never rewritten.
    const original = outageCopyOriginal(
      delivery.messageId,
      delivery.properties?.[MessageProperties.originalMessageId],
    );
    const messageId = original ?? delivery.messageId;
    const key = invalidMessageKey(delivery.route, messageId);
    const at = startedAt.toISOString();
    const fields = {
      eventId: salvageEventId(delivery.body) ?? `message:${messageId}`,
      route: delivery.route,
      messageId,
      dryRun: this.deps.policy.dryRun,
    };
    const written = await updateRecord(this.deps.audit, key, (current) => ({
      next:
        current === undefined
          ? invalidMessageRecord(key, fields, error, at)
          : countDuplicate(current, at),
      verdict: undefined,
    }));
    const record = written.record ?? invalidMessageRecord(key, fields, error, at);
    return delivered(this.settle, delivery, {
      disposition: 'reject',
      record,
      duplicate: false,
      error,
    });
  }
}
