import { parseCsv } from '../../cli/csv';

describe('parseCsv', () => {
  it('reads quoted fields, escaped quotes, embedded newlines, CRLF and a BOM, with line numbers', () => {
    const rows = parseCsv(
      '\uFEFFuser,reason\r\nalice@contoso.com,"left, happily"\r\n\r\nbob@contoso.com,"said ""bye""\nthen went"\ncarol@contoso.com,\n',
    );
    expect(rows).toEqual([
      { line: 1, fields: ['user', 'reason'] },
      { line: 2, fields: ['alice@contoso.com', 'left, happily'] },
      { line: 4, fields: ['bob@contoso.com', 'said "bye"\nthen went'] },
      { line: 6, fields: ['carol@contoso.com', ''] },
    ]);
  });

  it('names the line of an unterminated quote', () => {
    expect(() => parseCsv('user\n"alice@contoso.com\n')).toThrow(/Quote Not Closed: .* at line 2/);
  });
});
