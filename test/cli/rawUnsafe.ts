/**
 * What must never reach an operator's terminal raw: C0 controls (a newline aside: it separates
 * lines), DEL, C1, line and paragraph separators, bidi marks, overrides and isolates, zero-width
 * characters and the BOM. Written independently of cli/output.ts on purpose.
 */
export const RAW_UNSAFE =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
