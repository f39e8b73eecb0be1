/**
 * "Did you mean …?" for a misspelt name (a step kind, a device, a build, a flag): the known
 * name closest in edit distance, when it is close enough to be a typo rather than another
 * word. Messages stay one line; no suggestion is better than a wrong one.
 */

/** Levenshtein distance (insert, delete, substitute; a swap of neighbours counts as one). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** A name with its numbers blanked: `serial9` and `serial0` are two names, not a typo. */
const shape = (name: string): string => name.toLowerCase().replace(/\d+/g, '#');

/**
 * The candidate closest to `word`, if at most a third of its length away (at least 1, at most
 * 3 edits): `opn` → `open`, but `foo` suggests nothing among `migrate`, `vm.stop`. Names that
 * differ only in their numbers (`serial9`, `serial0`; `qemu-2.4`, `qemu-2.3`) are other
 * things, not misspellings: they are never suggested.
 */
export function closest(word: string, candidates: Iterable<string>): string | null {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | null = null;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    if (shape(c) === shape(word)) continue;
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/** ` (did you mean "x"?)`, or nothing when no candidate is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c === null ? '' : ` (did you mean ${JSON.stringify(c)}?)`;
}
