/**
 * A unified diff of two texts around their first difference: what a golden test prints when
 * the model's events change, so the failure reads as "this event became that one".
 */
export function unifiedDiff(expected: string, actual: string, name: string, context = 4): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  let first = 0;
  while (first < a.length && first < b.length && a[first] === b[first]) first++;
  if (first === a.length && first === b.length) return '';
  // The end of the changed region: the common tail is trimmed from both sides.
  let endA = a.length;
  let endB = b.length;
  while (endA > first && endB > first && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const from = Math.max(0, first - context);
  const toA = Math.min(a.length, endA + context);
  const toB = Math.min(b.length, endB + context);
  const lines = [
    `--- ${name} (committed)`,
    `+++ ${name} (this run)`,
    `@@ -${from + 1},${toA - from} +${from + 1},${toB - from} @@`,
    ...a.slice(from, first).map((l) => ` ${l}`),
    ...a.slice(first, endA).map((l) => `-${l}`),
    ...b.slice(first, endB).map((l) => `+${l}`),
    ...a.slice(endA, toA).map((l) => ` ${l}`),
  ];
  return lines.join('\n');
}
