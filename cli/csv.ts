import type { InfoDataSet } from 'csv-parse';
import { parse } from 'csv-parse/sync';

/** What `info: true, raw: true` return per record (csv-parse's types model neither). */
interface ParsedRecord {
  record: string[];
  raw: string;
  info: InfoDataSet;
}

/** One parsed CSV record with the 1-based line it starts on. */
export interface CsvRow {
  line: number;
  fields: string[];
}

/**
 * RFC 4180 CSV (csv-parse): commas, double-quoted fields with "" escapes and embedded newlines,
 * CRLF or LF, an optional BOM. Blank lines are skipped; rows keep their own field counts so the
 * caller can name the line of a short or long row. Throws csv-parse's error (with its line) on
 * malformed quoting.
 */
export function parseCsv(text: string): CsvRow[] {
  const records = parse(text.replace(/\r\n?/g, '\n'), {
    bom: true,
    info: true,
    raw: true,
    record_delimiter: '\n',
    relax_column_count: true,
    skip_empty_lines: true,
  }) as unknown as ParsedRecord[];
  return records
    .map(({ record, raw, info }) => ({
      // info.lines is the line the record ends on; its raw text holds the line breaks inside it
      // (after any skipped blank lines, before its own delimiter).
      line: info.lines - (raw.replace(/^\n+/, '').replace(/\n$/, '').match(/\n/g)?.length ?? 0),
      fields: record,
    }))
    .filter((row) => row.fields.some((field) => field.trim() !== ''));
}
