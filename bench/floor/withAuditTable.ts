/**
 * The design card's floor (designCard.ts) plus the audit table's client: the least a start-up
 * costs that can write an audit record (bench/coldStart.ts times it).
 */
import { TableClient } from '@azure/data-tables';
import { credential } from './designCard';

export const audit = new TableClient(
  'https://floor.table.core.windows.net',
  'OffboardingAudit',
  credential,
);
