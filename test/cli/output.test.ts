import { describeRecord, escapeUnsafe, formatTable, toJson } from '../../cli/output';
import type { AuditRecord } from '../../shared/core/ports';
import { RAW_UNSAFE } from './rawUnsafe';

const HOSTILE =
  'a\u0000b\u0007c\td\ne\u001b[0mf\u007fg\u0085h\u009bi\u200bj\u200ek\u202el\u2028m\u2029n\u2066o\ufeffp';

describe('escapeUnsafe', () => {
  it('escapes C0, DEL, C1, bidi, zero-width and line separators; leaves other text alone', () => {
    expect(escapeUnsafe(HOSTILE)).toBe(
      'a\\u0000b\\u0007c\\u0009d\\u000ae\\u001b[0mf\\u007fg\\u0085h\\u009bi\\u200bj\\u200ek\\u202el\\u2028m\\u2029n\\u2066o\\ufeffp',
    );
    expect(escapeUnsafe('Zoë Ünal <zoe@contoso.com> 日本 🙂')).toBe(
      'Zoë Ünal <zoe@contoso.com> 日本 🙂',
    );
  });
});

describe('toJson', () => {
  it('is JSON that parses back to the same value, with nothing unsafe written raw', () => {
    const value = { text: HOSTILE, nested: [HOSTILE] };
    const json = toJson(value);
    expect(json).not.toMatch(RAW_UNSAFE);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('formatTable', () => {
  it('escapes every cell and aligns on the escaped width', () => {
    expect(
      formatTable(
        ['a', 'b'],
        [
          ['x\u001b', 'y'],
          ['long cell', 'z'],
        ],
      ),
    ).toBe(['a          b', 'x\\u001b    y', 'long cell  z'].join('\n'));
  });
});

describe('describeRecord', () => {
  it('prints one field a line, escaping what the event and Graph supplied', () => {
    const record = {
      eventId: 'evt-\u001b[2J',
      user: 'eve\u202e@contoso.com',
      outcome: 'failed',
      actions: [{ action: 'revokeSessions', status: 'failed', message: 'Graph said\nno' }],
      notes: ['note\u0085'],
    } as unknown as AuditRecord;
    const text = describeRecord(record, false);
    expect(text).not.toMatch(RAW_UNSAFE);
    expect(text.split('\n')).toEqual([
      'event      evt-\\u001b[2J',
      'outcome    failed',
      'user       eve\\u202e@contoso.com',
      'action     revokeSessions: failed - Graph said\\u000ano',
      'note       note\\u0085',
    ]);
  });
});
