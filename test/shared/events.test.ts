import {
  MAX_EVENT_BYTES,
  decodeBody,
  eventMessage,
  kindOfType,
  parseEvent,
  salvageEventId,
} from '../../shared/core/events';
import { OffboardingError } from '../../shared/core/errors';

const LEAVING = ['employee.leaving', 'employee.leaving.cancelled'] as const;

function leaving(data: Record<string, unknown> = {}, envelope: Record<string, unknown> = {}) {
  return {
    specversion: '1.0',
    id: 'evt-123',
    source: '/hr/workday',
    type: 'employee.leaving',
    time: '2026-11-27T10:00:00Z',
    datacontenttype: 'application/json',
    data: { user: 'alice@contoso.com', ...data },
    ...envelope,
  };
}

function rejection(
  body: unknown,
  accepts: readonly Parameters<typeof parseEvent>[1][number][] = LEAVING,
): OffboardingError {
  try {
    parseEvent(body, accepts);
  } catch (error) {
    expect(error).toBeInstanceOf(OffboardingError);
    const failure = error as OffboardingError;
    expect(failure.code).toBe('InvalidEvent');
    expect(failure.retryable).toBe(false);
    return failure;
  }
  throw new Error('expected the event to be rejected');
}

describe('parseEvent', () => {
  it('parses the documented example with defaults applied', () => {
    const event = parseEvent(leaving({ reason: 'resignation', ticket: 'HR-4711' }), LEAVING);
    expect(event).toEqual({
      id: 'evt-123',
      source: '/hr/workday',
      type: 'employee.leaving',
      time: '2026-11-27T10:00:00Z',
      kind: 'employee.leaving',
      user: { kind: 'upn', value: 'alice@contoso.com' },
      userAsGiven: 'alice@contoso.com',
      disableAccount: true,
      resetPassword: false,
      reason: 'resignation',
      ticket: 'HR-4711',
    });
  });

  it('accepts the body as an object, a JSON string and UTF-8 bytes alike', () => {
    const object = leaving();
    const fromString = parseEvent(JSON.stringify(object), LEAVING);
    const fromBytes = parseEvent(Buffer.from(JSON.stringify(object)), LEAVING);
    const fromArray = parseEvent(new Uint8Array(Buffer.from(JSON.stringify(object))), LEAVING);
    expect(fromString).toEqual(parseEvent(object, LEAVING));
    expect(fromBytes).toEqual(fromString);
    expect(fromArray).toEqual(fromString);
  });

  it('accepts a reverse-DNS prefixed type and object ids in any case', () => {
    const event = parseEvent(
      leaving(
        {
          user: '6F1D2C3B-1111-4222-8333-944455556666',
          disableAccount: false,
          resetPassword: true,
        },
        { type: 'com.contoso.hr.employee.leaving' },
      ),
      LEAVING,
    );
    expect(event.kind).toBe('employee.leaving');
    expect(event.user).toEqual({ kind: 'objectId', value: '6f1d2c3b-1111-4222-8333-944455556666' });
    expect(event).toMatchObject({ disableAccount: false, resetPassword: true });
  });

  it('accepts guest and $-prefixed UPNs and CloudEvents extension attributes', () => {
    expect(
      parseEvent(leaving({ user: 'carol_fabrikam.com#EXT#@contoso.onmicrosoft.com' }), LEAVING).user
        .value,
    ).toBe('carol_fabrikam.com#EXT#@contoso.onmicrosoft.com');
    expect(
      parseEvent(leaving({ user: '$svc-legacy@contoso.com' }, { traceparent: '00-abc' }), LEAVING)
        .user.value,
    ).toBe('$svc-legacy@contoso.com');
  });

  it('reads mfa.enabled and employee.leaving.cancelled only where the queue takes them', () => {
    const mfa = { ...leaving(), type: 'mfa.enabled', data: { user: 'bob@contoso.com' } };
    expect(parseEvent(mfa, ['mfa.enabled']).kind).toBe('mfa.enabled');
    expect(rejection(mfa).message).toMatch(
      /does not belong on this queue, which takes employee.leaving/,
    );
    expect(rejection(leaving(), ['mfa.enabled']).message).toMatch(/does not belong on this queue/);
    const cancelled = {
      ...leaving(),
      type: 'com.contoso.employee.leaving.cancelled',
      data: { user: 'bob@contoso.com' },
    };
    expect(parseEvent(cancelled, LEAVING).kind).toBe('employee.leaving.cancelled');
    expect(kindOfType('x.employee.leaving.cancelled')).toBe('employee.leaving.cancelled');
  });

  // Each row: a kind of bad input, and what the error must name.
  const bad: Array<[string, unknown, RegExp]> = [
    ['empty string body', '', /empty/],
    ['null body', null, /empty/],
    ['non-JSON text', 'user=alice', /not JSON/],
    ['invalid UTF-8 bytes', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /UTF-8/],
    [
      'oversized body',
      JSON.stringify(leaving({ reason: 'x'.repeat(MAX_EVENT_BYTES) })),
      /limit is 65536/,
    ],
    ['JSON array', [leaving()], /must be a JSON object/],
    ['JSON number', '42', /must be a JSON object/],
    ['missing specversion', { ...leaving(), specversion: undefined }, /specversion must be "1.0"/],
    ['wrong specversion', leaving({}, { specversion: '0.3' }), /specversion must be "1.0"/],
    ['missing id', leaving({}, { id: undefined }), /^id is required/],
    ['empty id', leaving({}, { id: '' }), /^id must not be empty/],
    [
      'id with control characters',
      leaving({}, { id: 'evt\u0000' }),
      /^id must not contain control characters/,
    ],
    ['id too long', leaving({}, { id: 'e'.repeat(129) }), /^id must be at most 128/],
    ['missing source', leaving({}, { source: undefined }), /^source is required/],
    [
      'unknown type',
      leaving({}, { type: 'employee.joining' }),
      /type "employee.joining" is not one of/,
    ],
    [
      'time not RFC 3339',
      leaving({}, { time: 'yesterday' }),
      /^time must be an RFC 3339 timestamp/,
    ],
    [
      'datacontenttype not JSON',
      leaving({}, { datacontenttype: 'text/xml' }),
      /datacontenttype must declare JSON/,
    ],
    [
      'invalid extension attribute name',
      leaving({}, { 'X-Custom': 1 }),
      /X-Custom is not a CloudEvents attribute/,
    ],
    [
      'missing data',
      leaving({}, { data: undefined }),
      /data is required and must be a JSON object/,
    ],
    [
      'data as string',
      leaving({}, { data: 'alice@contoso.com' }),
      /data is required and must be a JSON object/,
    ],
    ['missing data.user', { ...leaving(), data: {} }, /data.user is required/],
    ['data.user not a string', leaving({ user: 42 }), /data.user/],
    [
      'data.user neither GUID nor UPN',
      leaving({ user: 'alice' }),
      /data.user must be an object id \(GUID\) or a user principal name/,
    ],
    [
      'data.user with a slash',
      leaving({ user: 'alice/../admin@contoso.com' }),
      /data.user must not contain "\/"/,
    ],
    [
      'data.user with a question mark',
      leaving({ user: 'alice?x=1@contoso.com' }),
      /data.user must not contain "\?"/,
    ],
    [
      'data.user with an ampersand',
      leaving({ user: 'a&b@contoso.com' }),
      /data.user must not contain "&"/,
    ],
    [
      'data.user with a control character',
      leaving({ user: 'alice\n@contoso.com' }),
      /data.user must not contain control characters/,
    ],
    [
      'data.user with two @',
      leaving({ user: 'a@b@contoso.com' }),
      /data.user must be an object id/,
    ],
    [
      'data.user with a bad domain',
      leaving({ user: 'alice@contoso' }),
      /data.user must end in a valid domain/,
    ],
    [
      'data.user too long',
      leaving({ user: `${'a'.repeat(64)}@${'b'.repeat(45)}.com` }),
      /data.user must be at most 113/,
    ],
    [
      'data.user percent-encoded',
      leaving({ user: 'alice%40contoso.com@contoso.com' }),
      /data.user must not contain "%"/,
    ],
    ['disableAccount as a string', leaving({ disableAccount: 'false' }), /data.disableAccount/],
    ['resetPassword as a number', leaving({ resetPassword: 1 }), /data.resetPassword/],
    [
      'reason over 256 characters',
      leaving({ reason: 'r'.repeat(257) }),
      /data.reason must be at most 256/,
    ],
    [
      'ticket over 256 characters',
      leaving({ ticket: 't'.repeat(257) }),
      /data.ticket must be at most 256/,
    ],
    [
      'reason with a NUL',
      leaving({ reason: 'left\u0000' }),
      /data.reason must not contain control characters/,
    ],
    ['unknown data field (typo)', leaving({ disableAcount: false }), /data.*disableAcount/],
    [
      'effectiveAt not a timestamp',
      leaving({ effectiveAt: 'next friday' }),
      /data.effectiveAt must be an RFC 3339/,
    ],
  ];

  it.each(bad)('rejects %s with a clear error', (_kind, body, expected) => {
    expect(rejection(body).message).toMatch(expected);
  });

  it('rejects leaver-only fields on mfa.enabled and says why', () => {
    const body = {
      ...leaving(),
      type: 'mfa.enabled',
      data: { user: 'bob@contoso.com', resetPassword: true },
    };
    expect(rejection(body, ['mfa.enabled']).message).toMatch(
      /resetPassword.*apply to employee.leaving only/,
    );
  });

  it('names every offending field at once', () => {
    const message = rejection(leaving({}, { id: '', source: '' })).message;
    expect(message).toMatch(/id must not be empty/);
    expect(message).toMatch(/source must not be empty/);
  });

  it('salvages a usable event id from an invalid event for the audit', () => {
    expect(salvageEventId(JSON.stringify(leaving({ user: 'nope' })))).toBe('evt-123');
    expect(salvageEventId('not json')).toBeUndefined();
    expect(salvageEventId({ id: 'x\u0001' })).toBeUndefined();
  });
});

describe('shape limits before anything recursive sees the event', () => {
  let deep: unknown = 'x';
  for (let i = 0; i < 3000; i++) deep = [deep];

  it.each([
    [
      'an object extension attribute',
      leaving({}, { traceparentx: { a: 1 } }),
      /traceparentx must be a string, an integer or a boolean/,
    ],
    [
      'an array extension attribute',
      leaving({}, { tags: ['a'] }),
      /tags must be a string, an integer or a boolean/,
    ],
    ['a 3,000-deep array extension attribute', leaving({}, { deep }), /nested more than 8 levels/],
    [
      'a fractional number extension attribute',
      leaving({}, { weight: 1.5 }),
      /weight must be a string, an integer or a boolean/,
    ],
  ])('rejects %s (CloudEvents allows only its scalar types)', (_what, body, expected) => {
    expect(rejection(body).message).toMatch(expected);
    expect(rejection(JSON.stringify(body)).message).toMatch(expected);
  });

  it('accepts scalar extension attributes', () => {
    expect(() =>
      parseEvent(leaving({}, { partition: 'a', sequence: 7, sampled: true }), LEAVING),
    ).not.toThrow();
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'rejects the key %s anywhere in the body',
    (key) => {
      const top = `{"specversion":"1.0","id":"e","source":"/s","type":"employee.leaving","${key}":{"x":1},"data":{"user":"a@contoso.com"}}`;
      const inData = `{"specversion":"1.0","id":"e","source":"/s","type":"employee.leaving","data":{"user":"a@contoso.com","${key}":{}}}`;
      expect(rejection(top).message).toMatch(`forbidden key "${key}"`);
      expect(rejection(inData).message).toMatch(`forbidden key "${key}"`);
    },
  );

  it('rejects a deeply nested body as an invalid event, without overflowing the stack', () => {
    const body = JSON.stringify({ ...leaving(), data: { user: 'a@contoso.com', deep } });
    expect(rejection(body).message).toMatch(/nested more than 8 levels/);
    expect(salvageEventId(body)).toBeUndefined();
  });
});

describe('content modes (CloudEvents AMQP binding, JSON format)', () => {
  const data = { user: 'alice@contoso.com', resetPassword: true };
  const attributes = {
    specversion: '1.0',
    id: 'evt-bin-1',
    source: '/hr/workday',
    type: 'employee.leaving',
    time: '2026-11-27T10:00:00Z',
  };
  const prefixed = (prefix: string, values: Record<string, unknown> = attributes) =>
    Object.fromEntries(Object.entries(values).map(([name, value]) => [prefix + name, value]));
  const structured = parseEvent(leaving({ resetPassword: true }), LEAVING);
  const fromMessage = (message: Parameters<typeof eventMessage>[0]) =>
    parseEvent(eventMessage(message).body, LEAVING);

  it('reads binary mode, with either prefix, as the same event as its structured twin', () => {
    for (const prefix of ['cloudEvents:', 'cloudEvents_']) {
      const event = fromMessage({
        body: Buffer.from(JSON.stringify(data)),
        contentType: 'application/json; charset=utf-8',
        properties: prefixed(prefix),
      });
      expect(event).toEqual({ ...structured, id: 'evt-bin-1' });
    }
  });

  it('accepts native AMQP types (timestamp, long, binary) as well as canonical strings', () => {
    const message = eventMessage({
      body: JSON.stringify(data),
      contentType: 'application/json',
      properties: {
        ...prefixed('cloudEvents:', { ...attributes, time: new Date('2026-11-27T10:00:00Z') }),
        'cloudEvents:priority': 7,
        'cloudEvents:signature': Buffer.from([1, 2, 3]),
        'cloudEvents:urgent': true,
      },
    });
    expect(decodeBody(message.body)).toMatchObject({
      time: '2026-11-27T10:00:00.000Z',
      priority: 7,
      signature: 'AQID',
      urgent: true,
      datacontenttype: 'application/json',
      data,
    });
    expect(parseEvent(message.body, LEAVING).time).toBe('2026-11-27T10:00:00.000Z');
  });

  it('takes the attributes out of the properties the app carries onto its copies', () => {
    const message = eventMessage({
      body: Buffer.from(JSON.stringify(data)),
      properties: { ...prefixed('cloudEvents:'), offboardingAttempt: 2 },
    });
    expect(message.properties).toEqual({ offboardingAttempt: 2 });
    // A copy (the decoded, structured event) is read as structured again.
    const copy = eventMessage({
      body: decodeBody(message.body),
      contentType: 'application/json',
      properties: message.properties,
    });
    expect(parseEvent(copy.body, LEAVING)).toEqual(parseEvent(message.body, LEAVING));
  });

  it('applies the same validation to binary mode, naming the field', () => {
    const bad = eventMessage({
      body: Buffer.from(JSON.stringify({ user: 'a/b@contoso.com' })),
      contentType: 'application/json',
      properties: prefixed('cloudEvents:', { ...attributes, specversion: '0.3' }),
    });
    expect(rejection(bad.body).message).toBe('specversion must be "1.0" (CloudEvents 1.0)');
    const badUser = eventMessage({
      body: Buffer.from(JSON.stringify({ user: 'a/b@contoso.com' })),
      properties: prefixed('cloudEvents:'),
    });
    expect(rejection(badUser.body).message).toBe('data.user must not contain "/"');
    expect(salvageEventId(badUser.body)).toBe('evt-bin-1');
  });

  it('rejects binary-mode data that is not JSON, naming the mode and the content type', () => {
    const xml = eventMessage({
      body: Buffer.from('<user>alice</user>'),
      contentType: 'application/xml',
      properties: prefixed('cloudEvents:'),
    });
    expect(rejection(xml.body).message).toMatch(
      /^binary content mode: datacontenttype \(the message content type\) "application\/xml" is not JSON/,
    );
    expect(salvageEventId(xml.body)).toBe('evt-bin-1');
    const garbage = eventMessage({
      body: Buffer.from('{not json'),
      contentType: 'application/json',
      properties: prefixed('cloudEvents:'),
    });
    expect(rejection(garbage.body).message).toBe(
      'binary content mode: the message body (data) is not JSON',
    );
    const dataAsProperty = eventMessage({
      body: Buffer.from(JSON.stringify(data)),
      properties: prefixed('cloudEvents:', { ...attributes, data: '{}' }),
    });
    expect(rejection(dataAsProperty.body).message).toMatch(
      /^binary content mode: data is the message body/,
    );
  });

  it('rejects an attribute sent with both prefixes and different values', () => {
    const message = eventMessage({
      body: Buffer.from(JSON.stringify(data)),
      properties: { ...prefixed('cloudEvents:'), cloudEvents_id: 'other' },
    });
    expect(rejection(message.body).message).toMatch(/attribute id is sent twice/);
  });

  it('rejects a prototype key sent as an attribute name', () => {
    const message = eventMessage({
      body: Buffer.from(JSON.stringify(data)),
      properties: { ...prefixed('cloudEvents:'), 'cloudEvents:__proto__': 'x' },
    });
    expect(rejection(message.body).message).toMatch(/forbidden key "__proto__"/);
  });

  it('reads application/cloudevents+json as structured even with binary-mode properties', () => {
    const message = eventMessage({
      body: JSON.stringify(leaving({ resetPassword: true })),
      contentType: 'application/cloudevents+json; charset=UTF-8',
      properties: prefixed('cloudEvents:', { ...attributes, id: 'ignored' }),
    });
    expect(parseEvent(message.body, LEAVING)).toEqual(structured);
  });

  it('rejects batched mode and other event formats, naming them', () => {
    const batch = eventMessage({
      body: JSON.stringify([leaving()]),
      contentType: 'application/cloudevents-batch+json',
      properties: {},
    });
    expect(rejection(batch.body).message).toMatch(
      /^batched content mode \(application\/cloudevents-batch\+json\) is not supported/,
    );
    const avro = eventMessage({
      body: Buffer.from([0]),
      contentType: 'application/cloudevents+avro',
      properties: {},
    });
    expect(rejection(avro.body).message).toMatch(
      /^structured content mode in the event format application\/cloudevents\+avro is not supported/,
    );
  });

  it('reads data_base64 as the JSON data it encodes', () => {
    const { data: plain, ...envelope } = leaving({ resetPassword: true });
    const encoded = {
      ...envelope,
      data_base64: Buffer.from(JSON.stringify(plain)).toString('base64'),
    };
    expect(parseEvent(encoded, LEAVING)).toEqual(structured);
    expect(rejection({ ...encoded, data: plain }).message).toMatch(
      /^data and data_base64 must not both be present/,
    );
    expect(rejection({ ...encoded, data_base64: 'not base64!' }).message).toBe(
      'data_base64 must be a base64 string (RFC 4648)',
    );
    expect(
      rejection({ ...encoded, data_base64: Buffer.from('<x/>').toString('base64') }).message,
    ).toBe('data_base64 is not JSON');
    expect(rejection({ ...encoded, datacontenttype: 'text/plain' }).message).toMatch(
      /^datacontenttype "text\/plain" is not JSON/,
    );
  });

  it('accepts datacontenttype parameters and any JSON media type', () => {
    for (const datacontenttype of [
      'application/json; charset=utf-8',
      'application/vnd.contoso.hr+json',
      'text/json',
    ])
      expect(parseEvent(leaving({}, { datacontenttype }), LEAVING).id).toBe('evt-123');
    expect(rejection(leaving({}, { datacontenttype: 'text/plain' })).message).toMatch(
      /^datacontenttype must declare JSON/,
    );
  });
});
