// CSV cells of the dashboard's exports (no imports: unit-tested by
// tests/browser/csv.test.mjs with node alone).

/**
 * One CSV cell. Text starting with = + - @ tab or CR gets a leading ' so a
 * spreadsheet does not run it as a formula (a tag value "=HYPERLINK(...)");
 * numbers stay numbers.
 */
export function csvCell(v) {
  let s = v === null || v === undefined ? "" : String(v);
  if (typeof v !== "number" && /^[=+\-@\t\r]/.test(s) && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
