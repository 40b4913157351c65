/** The Bicep reader the infra checks rely on: parsing and in-memory evaluation of the subset used. */
import {
  BicepSyntaxError,
  Deployment,
  parseBicep,
  resourceAccess,
  show,
  stripComments,
  isSym,
} from './bicep';

const deployOne = (source: string, params: Record<string, string | number | boolean> = {}) =>
  new Deployment({ 'main.bicep': source }, 'main.bicep', params);

describe('Bicep parser', () => {
  test('declarations, decorators and source ranges', () => {
    const source = [
      "targetScope = 'subscription'",
      '',
      "@description('The name.')",
      '@minLength(1)',
      'param name string',
      "param flag bool = true // a comment with 'quotes'",
      "var url = 'https://example.com/a//b' // not a comment inside the string",
      '',
      "resource r 'Microsoft.Foo/bars@2024-01-01' = if (flag) {",
      '  name: name',
      '}',
      "output o string = '${name}-x'",
    ].join('\n');
    const file = parseBicep('main.bicep', source);
    expect(file.targetScope).toBe('subscription');
    expect(file.params.map((p) => [p.name, p.type, p.decorators.map((d) => d.name)])).toEqual([
      ['name', 'string', ['description', 'minLength']],
      ['flag', 'bool', []],
    ]);
    expect(source.slice(file.params[0]?.start, file.params[0]?.end)).toBe(
      "@description('The name.')\n@minLength(1)\nparam name string",
    );
    expect(file.vars[0]?.source).toBe("'https://example.com/a//b'");
    expect(file.resources[0]?.condition).toBeDefined();
    expect(file.resources[0]?.type).toBe('Microsoft.Foo/bars');
    expect(file.resources[0]?.apiVersion).toBe('2024-01-01');
  });

  test('expressions: interpolation, escapes, ternaries, lambdas, loops, single-line and multi-line objects', () => {
    const dep = deployOne(
      [
        "param env string = 'dev'",
        "var escaped = 'it\\'s ${toUpper(env)}'",
        "var items = [for (x, i) in ['a', 'b']: { name: '${x}${i}', first: i == 0 }]",
        'var picked = filter(items, item => item.first)[0].name',
        "var mapped = map(['x'], (v, i) => '${v}${i}')",
        "var objects = concat([{ id: 'a', type: 'Group' }], empty(env) ? [] : [{ id: env, type: 'User' }])",
        "var multi = '''",
        'line one',
        "it's raw ${not interpolated}",
        "'''",
        'var calc = (1 + 2) * 3 - 4 / 2 % 3',
        'var cond = !empty(env) && length(env) >= 3 || false',
        "var coalesced = null ?? 'fallback'",
        "var split = split(split('https://sb.servicebus.windows.net:443/', '//')[1], ':')[0]",
        "var trimmed = endsWith('a/', '/') ? substring('a/', 0, length('a/') - 1) : 'a/'",
      ].join('\n'),
    );
    const v = (name: string) => dep.main.variable(name);
    expect(v('escaped')).toBe("it's DEV");
    expect(v('items')).toEqual([
      { name: 'a0', first: true },
      { name: 'b1', first: false },
    ]);
    expect(v('picked')).toBe('a0');
    expect(v('mapped')).toEqual(['x0']);
    expect(v('objects')).toEqual([
      { id: 'a', type: 'Group' },
      { id: 'dev', type: 'User' },
    ]);
    expect(v('multi')).toBe("line one\nit's raw ${not interpolated}\n");
    expect(v('calc')).toBe(7);
    expect(v('cond')).toBe(true);
    expect(v('coalesced')).toBe('fallback');
    expect(v('split')).toBe('sb.servicebus.windows.net');
    expect(v('trimmed')).toBe('a');
  });

  test('resources, loops, conditions, modules and deployment-time values', () => {
    const files = {
      'main.bicep': [
        'param principals array = []',
        'param enabled bool = false',
        "resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {",
        "  name: 'id-${uniqueString(resourceGroup().id)}'",
        '}',
        "module child 'modules/child.bicep' = {",
        "  name: 'child'",
        '  params: {',
        '    principalId: id.properties.principalId',
        '    principals: principals',
        '  }',
        '}',
        "resource optional 'Microsoft.Foo/bars@2024-01-01' = if (enabled) {",
        "  name: 'optional'",
        '}',
        'output fromChild string = child.outputs.seen',
      ].join('\n'),
      'modules/child.bicep': [
        'param principalId string',
        'param principals array',
        "resource q 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {",
        "  name: 'q1'",
        '}',
        "resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = [",
        '  for p in principals: {',
        '    name: guid(q.id, p, principalId)',
        '    scope: q',
        '    properties: {',
        '      principalId: p',
        '    }',
        '  }',
        ']',
        'output seen string = principalId',
      ].join('\n'),
    };
    const none = new Deployment(files, 'main.bicep', {});
    expect(none.resources().map((r) => r.type)).toEqual([
      'Microsoft.ManagedIdentity/userAssignedIdentities',
      'Microsoft.ServiceBus/namespaces/queues',
    ]);
    const two = new Deployment(files, 'main.bicep', { principals: ['a', 'b'], enabled: true });
    const assignments = two
      .resources()
      .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments');
    expect(
      assignments.map((r) => (r.body.properties as Record<string, unknown>).principalId),
    ).toEqual(['a', 'b']);
    expect(resourceAccess(assignments[0]?.body.scope)?.instance.name).toBe('q1');
    const seen = two.main.output('fromChild');
    expect(isSym(seen) && show(seen)).toBe(
      'resource(Microsoft.ManagedIdentity/userAssignedIdentities:id-${uniqueString(resourceGroup().id)}).properties.principalId',
    );
    expect(two.resources().some((r) => r.name === 'optional')).toBe(true);
  });

  test('unsupported or malformed Bicep is an error, not a guess', () => {
    expect(() => parseBicep('x.bicep', 'type t = string')).toThrow(BicepSyntaxError);
    expect(() => parseBicep('x.bicep', "resource r 'A/b@1' = {\n  resource c 'd' = {}\n}")).toThrow(
      /nested resource/,
    );
    expect(() => parseBicep('x.bicep', "var a = 'unterminated")).toThrow(/unterminated/);
    expect(() => parseBicep('x.bicep', 'var a = { b: 1 c: 2 }')).toThrow(BicepSyntaxError);
    expect(() => deployOne('var a = b').main.variable('a')).toThrow(/unknown name "b"/);
    expect(
      () => new Deployment({ 'main.bicep': 'param a string' }, 'main.bicep', { nope: 'x' }),
    ).toThrow(/no parameter "nope"/);
  });

  test('stripComments keeps strings that contain comment markers', () => {
    expect(stripComments("var a = 'x // y' // gone\n/* block\n */var b = 1")).toBe(
      "var a = 'x // y' \n\nvar b = 1",
    );
  });
});
