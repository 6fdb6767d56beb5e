// Unit test of the dashboard's CSV cells (issue 19 §2: exports neutralise
// spreadsheet formulas). Runs with node alone: `node --test tests/browser/csv.test.mjs`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { csvCell } from "../../aggregator/assets/csv.js";

test("formula-like text gets a leading quote", () => {
  assert.equal(csvCell('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
  assert.equal(csvCell("+1+cmd|' /C calc'!A0"), "'+1+cmd|' /C calc'!A0");
  assert.equal(csvCell("-2+3"), "'-2+3");
  assert.equal(csvCell("@SUM(A1)"), "'@SUM(A1)");
  assert.equal(csvCell("\tx"), "'\tx");
  assert.equal(csvCell("\rx"), `"'\rx"`);
});

test("numbers and plain text are unchanged", () => {
  assert.equal(csvCell(-1.5), "-1.5");
  assert.equal(csvCell("-2e3"), "-2e3");
  assert.equal(csvCell(12), "12");
  assert.equal(csvCell("AmazonEC2"), "AmazonEC2");
  assert.equal(csvCell("a,b"), '"a,b"');
  assert.equal(csvCell(null), "");
});
