/**
 * The model's own invariants, always on (TigerBeetle style). A broken one is a bug in the
 * model or in a device revision, never bad input: the run reports it as `model-assert`.
 */
export class ModelAssertError extends Error {
  override readonly name = 'ModelAssertError';
}

export function assert(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new ModelAssertError(msg);
}

/**
 * Throws a broken invariant. For hot paths: `if (!cond) fail(\`...${x}\`)` builds its message
 * only when it fails, where `assert(cond, \`...\`)` would build it on every call.
 */
export function fail(msg: string): never {
  throw new ModelAssertError(msg);
}
